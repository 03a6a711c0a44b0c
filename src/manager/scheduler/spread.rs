//! The spread strategy: each task goes to the branch, then the node, with the fewest tasks of
//! its service.
//!
//! The nodes are arranged in a tree by the values of the preference labels, one level per
//! preference (none: the root is the only leaf). As in swarmkit, a branch weighs the tasks of
//! the service on all its nodes, eligible or not, and nodes lacking a label share the branch of
//! the empty value. Every level is a min-heap holding only what can still take a task, so a
//! placement walks one path down and back up: O(depth · log nodes), with no allocation.
//!
//! Ties go to the smaller label value between branches, and between nodes to the one with
//! fewer tasks in all, then to the smaller node ID.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::constraint::Label;
use super::model::NodeInfo;

/// How loaded a node is, compared field by field: tasks of the group's service first, then
/// tasks of every service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Rank {
    /// Tasks of the group's service on the node.
    pub(super) service_tasks: u32,
    /// Tasks of every service on the node.
    pub(super) total_tasks: u32,
}

/// A node in a leaf's heap: its rank, then its index (node indices follow node IDs).
type NodeEntry = Reverse<(Rank, usize)>;

/// A branch in its parent's heap: the service's tasks under it, its label value's order among
/// its siblings, and its index in the tree.
type BranchEntry = Reverse<(u64, usize, usize)>;

/// A set of nodes sharing the same values for the preference labels down to its level.
enum Branch {
    /// A branch split by the next preference, holding the children with room left.
    Inner(BinaryHeap<BranchEntry>),
    /// A branch past the last preference, holding the nodes that can take a task.
    Leaf(BinaryHeap<NodeEntry>),
}

/// The nodes of one group, arranged for spreading its tasks. The root is branch 0.
pub(super) struct SpreadTree {
    branches: Vec<Branch>,
    /// The branches walked down to the node [`SpreadTree::best_node`] last chose, kept to
    /// update them when the task is placed.
    path: Vec<usize>,
}

/// A branch while the tree is being built.
struct Draft<'n> {
    /// Whether it is past the last level, and so holds nodes rather than branches.
    leaf: bool,
    /// Tasks of the service on all its nodes.
    tasks: u64,
    /// Its children by label value, in value order.
    children: BTreeMap<&'n str, usize>,
    /// Its nodes that can take a task, if it is a leaf.
    nodes: Vec<NodeEntry>,
}

impl Draft<'_> {
    fn new(leaf: bool) -> Self {
        Draft {
            leaf,
            tasks: 0,
            children: BTreeMap::new(),
            nodes: Vec::new(),
        }
    }
}

impl Branch {
    fn is_empty(&self) -> bool {
        match self {
            Branch::Inner(children) => children.is_empty(),
            Branch::Leaf(nodes) => nodes.is_empty(),
        }
    }
}

impl SpreadTree {
    /// Arranges `nodes` by the values of `levels`. `service_tasks[i]` weighs on node `i`'s
    /// branches; `rank(i)` is `Some` only if node `i` can take a task of the group.
    pub(super) fn new(
        levels: &[Label],
        nodes: &[NodeInfo],
        service_tasks: &[u32],
        rank: impl Fn(usize) -> Option<Rank>,
    ) -> SpreadTree {
        let mut drafts = vec![Draft::new(levels.is_empty())];
        for (index, node) in nodes.iter().enumerate() {
            let tasks = u64::from(service_tasks[index]);
            let mut at = 0;
            for (depth, level) in levels.iter().enumerate() {
                let fresh = drafts.len();
                let child = *drafts[at]
                    .children
                    .entry(level.value(node))
                    .or_insert(fresh);
                if child == fresh {
                    drafts.push(Draft::new(depth + 1 == levels.len()));
                }
                drafts[child].tasks += tasks;
                at = child;
            }
            if let Some(rank) = rank(index) {
                drafts[at].nodes.push(Reverse((rank, index)));
            }
        }

        // Children are numbered after their parent, so going backwards meets every child
        // before its parent, and a parent keeps only the children with room.
        let mut branches = Vec::with_capacity(drafts.len());
        let mut has_room = vec![false; drafts.len()];
        for at in (0..drafts.len()).rev() {
            let branch = if drafts[at].leaf {
                Branch::Leaf(BinaryHeap::from(std::mem::take(&mut drafts[at].nodes)))
            } else {
                let children = drafts[at].children.values().enumerate();
                Branch::Inner(
                    children
                        .filter(|&(_, &child)| has_room[child])
                        .map(|(order, &child)| Reverse((drafts[child].tasks, order, child)))
                        .collect(),
                )
            };
            has_room[at] = !branch.is_empty();
            branches.push(branch);
        }
        branches.reverse();
        SpreadTree {
            branches,
            path: Vec::with_capacity(levels.len() + 1),
        }
    }

    /// The node the next task should go to, or `None` when no node can take one.
    pub(super) fn best_node(&mut self) -> Option<usize> {
        self.path.clear();
        let mut at = 0;
        loop {
            self.path.push(at);
            match &self.branches[at] {
                Branch::Inner(children) => at = children.peek()?.0.2,
                Branch::Leaf(nodes) => return nodes.peek().map(|entry| entry.0.1),
            }
        }
    }

    /// Records a task placed on the node [`SpreadTree::best_node`] just returned. `rank` is
    /// the node's new rank if it can take another task of the group, `None` if it cannot.
    /// Every branch above it counts the task, and a branch left without room leaves its
    /// parent.
    pub(super) fn placed(&mut self, rank: Option<Rank>) {
        let mut emptied = false;
        for &at in self.path.iter().rev() {
            match &mut self.branches[at] {
                Branch::Leaf(nodes) => match rank {
                    Some(rank) => {
                        if let Some(mut top) = nodes.peek_mut() {
                            top.0.0 = rank;
                        }
                    }
                    None => {
                        nodes.pop();
                    }
                },
                // The path went through each branch's best child, which is its heap's top.
                Branch::Inner(children) => {
                    if emptied {
                        children.pop();
                    } else if let Some(mut top) = children.peek_mut() {
                        top.0.0 += 1;
                    }
                }
            }
            emptied = self.branches[at].is_empty();
        }
    }
}
