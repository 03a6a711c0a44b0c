//! Orchestrator decisions on hand-made states.
