//! Placement preferences in docker's syntax (`spread=node.labels.zone`).
//!
//! Each preference adds a level to the spread: tasks are shared evenly between the values of
//! the label, then between the values of the next label within each, and so on. swarmkit only
//! spreads over node and engine labels and silently ignores other descriptors (such as
//! `node.hostname`), so they are accepted and ignored here too.

use super::constraint::Label;
use super::model::PlacementError;

/// Parses a group's preferences, outermost first, into the labels to spread over.
pub(super) fn spread_levels(preferences: &[String]) -> Result<Vec<Label>, PlacementError> {
    let mut levels = Vec::with_capacity(preferences.len());
    for text in preferences {
        let invalid = |reason: &str| PlacementError::InvalidPreference {
            preference: text.clone(),
            reason: reason.to_owned(),
        };
        let (strategy, descriptor) = text
            .split_once('=')
            .ok_or_else(|| invalid("expected spread=<descriptor>"))?;
        if !strategy.trim().eq_ignore_ascii_case("spread") {
            return Err(invalid("the only strategy is spread"));
        }
        let descriptor = descriptor.trim();
        if descriptor.is_empty() {
            return Err(invalid(
                "spread needs a descriptor, such as node.labels.zone",
            ));
        }
        levels.extend(Label::parse(descriptor));
    }
    Ok(levels)
}
