//! The node's overlays: the route table the leader sends, and what it is turned into here.
//!
//! Each route update becomes a new immutable [`RouteTable`] snapshot, swapped in whole: readers
//! (the data plane, `network inspect`) never see a table half-applied.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::net::routes::{RouteChange, RouteTable};

/// This node's view of its overlays.
pub struct NodeNetwork {
    table: ArcSwap<RouteTable>,
}

impl NodeNetwork {
    /// A node on no overlay yet.
    pub fn new() -> Arc<NodeNetwork> {
        Arc::new(NodeNetwork {
            table: ArcSwap::from_pointee(RouteTable::default()),
        })
    }

    /// The current route table.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// Applies a route update from the leader (from an empty table if `reset`).
    pub fn update(&self, reset: bool, changes: &[RouteChange]) -> Arc<RouteTable> {
        let mut table = if reset {
            RouteTable::default()
        } else {
            RouteTable::clone(&self.table.load())
        };
        table.apply(changes);
        let table = Arc::new(table);
        self.table.store(table.clone());
        table
    }
}
