//! Root CA, join tokens, node certificates, and the IDs swarm objects carry.
