//! The `shoal` client commands, speaking the Docker Engine API through bollard.
