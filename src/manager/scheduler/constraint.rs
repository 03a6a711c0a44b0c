//! Placement constraints in docker's syntax (`node.labels.zone == east`), parsed and matched
//! the way swarmkit does:
//!
//! - keys are case-insensitive (`NODE.ROLE`), but a label's name is taken as written;
//! - values are compared ignoring ASCII case, labels included (`node.role==Manager`);
//! - a label a node lacks reads as empty, so `==` never matches it and `!=` always does;
//! - `node.ip` takes an address or a CIDR network and compares addresses, not text.
//!
//! One deliberate difference: swarmkit accepts an unknown key such as `node.foo` and then
//! matches no node with it; here it is refused up front, since it can only be a typo.

use std::net::IpAddr;

use super::model::{NodeInfo, PlacementError, Role};

const NODE_LABEL_PREFIX: &str = "node.labels.";
const ENGINE_LABEL_PREFIX: &str = "engine.labels.";

/// One parsed placement constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    test: Test,
    /// `!=`: the constraint holds where the test fails.
    negated: bool,
}

/// What a constraint compares.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Test {
    /// A node attribute equals this value, ignoring ASCII case.
    Text(Field, String),
    /// The node's address is this address or lies in this network.
    Ip(IpPattern),
}

/// The node attributes compared as text.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Field {
    Id,
    Hostname,
    Role,
    Os,
    Arch,
    Label(Label),
}

/// A label read from a node, by constraints and spread preferences alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Label {
    /// A label the operator set (`node.labels.NAME`).
    Node(String),
    /// A label the engine reported (`engine.labels.NAME`).
    Engine(String),
}

impl Label {
    /// Reads `node.labels.NAME` or `engine.labels.NAME`; the prefix is case-insensitive and
    /// the name must not be empty.
    pub(super) fn parse(key: &str) -> Option<Label> {
        let name = |prefix: &str| {
            let head = key.get(..prefix.len())?;
            let name = &key[prefix.len()..];
            (head.eq_ignore_ascii_case(prefix) && !name.is_empty()).then(|| name.to_owned())
        };
        name(NODE_LABEL_PREFIX)
            .map(Label::Node)
            .or_else(|| name(ENGINE_LABEL_PREFIX).map(Label::Engine))
    }

    /// The label's value on `node`; empty when the node lacks it, as swarmkit reads it.
    pub(super) fn value<'n>(&self, node: &'n NodeInfo) -> &'n str {
        let (labels, name) = match self {
            Label::Node(name) => (&node.labels, name),
            Label::Engine(name) => (&node.engine_labels, name),
        };
        labels.get(name).map_or("", String::as_str)
    }
}

/// An address or a network a `node.ip` constraint names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum IpPattern {
    Address(IpAddr),
    Network { base: IpAddr, prefix_len: u8 },
}

impl IpPattern {
    fn parse(text: &str) -> Option<IpPattern> {
        if let Ok(address) = text.parse() {
            return Some(IpPattern::Address(address));
        }
        let (base, prefix_len) = text.split_once('/')?;
        let base: IpAddr = base.parse().ok()?;
        if prefix_len.is_empty() || !prefix_len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix_len = prefix_len.parse().ok()?;
        let bits = if base.is_ipv4() { 32 } else { 128 };
        (prefix_len <= bits).then_some(IpPattern::Network { base, prefix_len })
    }

    /// Whether the node at `addr` is this address or in this network; a node without a
    /// usable address is neither.
    fn contains(&self, addr: &str) -> bool {
        let Ok(addr) = addr.parse::<IpAddr>() else {
            return false;
        };
        // An IPv4-mapped IPv6 address is the IPv4 address, as Go's net.IP compares them.
        let addr = addr.to_canonical();
        match *self {
            IpPattern::Address(address) => address.to_canonical() == addr,
            IpPattern::Network { base, prefix_len } => match (base, addr) {
                (IpAddr::V4(base), IpAddr::V4(addr)) => {
                    let mask = u32::MAX
                        .checked_shl(32 - u32::from(prefix_len))
                        .unwrap_or(0);
                    u32::from(base) & mask == u32::from(addr) & mask
                }
                (IpAddr::V6(base), IpAddr::V6(addr)) => {
                    let mask = u128::MAX
                        .checked_shl(128 - u32::from(prefix_len))
                        .unwrap_or(0);
                    u128::from(base) & mask == u128::from(addr) & mask
                }
                _ => false,
            },
        }
    }
}

impl Constraint {
    /// Parses `KEY == VALUE` or `KEY != VALUE`, whitespace around the operator allowed.
    pub fn parse(text: &str) -> Result<Constraint, PlacementError> {
        let invalid = |reason: String| PlacementError::InvalidConstraint {
            constraint: text.to_owned(),
            reason,
        };
        // swarmkit looks for `==` anywhere first, so `a!=b==c` is key `a!=b`, refused below.
        let (key, value, negated) = [("==", false), ("!=", true)]
            .into_iter()
            .find_map(|(operator, negated)| {
                let (key, value) = text.split_once(operator)?;
                Some((key.trim(), value.trim(), negated))
            })
            .ok_or_else(|| invalid("expected one operator from ==, !=".to_owned()))?;
        if !is_valid_key(key) {
            return Err(invalid(format!("key {key:?} is invalid")));
        }
        if !is_valid_value(value) {
            return Err(invalid(format!("value {value:?} is invalid")));
        }
        let field = match key.to_ascii_lowercase().as_str() {
            "node.id" => Field::Id,
            "node.hostname" => Field::Hostname,
            "node.role" => Field::Role,
            "node.platform.os" => Field::Os,
            "node.platform.arch" => Field::Arch,
            "node.ip" => {
                let pattern = IpPattern::parse(value).ok_or_else(|| {
                    invalid(format!(
                        "{value:?} is neither an IP address nor a CIDR network"
                    ))
                })?;
                let test = Test::Ip(pattern);
                return Ok(Constraint { test, negated });
            }
            _ => Field::Label(
                Label::parse(key).ok_or_else(|| invalid(format!("unknown key {key:?}")))?,
            ),
        };
        let test = Test::Text(field, value.to_owned());
        Ok(Constraint { test, negated })
    }

    /// Parses every constraint of a group, stopping at the first invalid one.
    pub fn parse_all(texts: &[String]) -> Result<Vec<Constraint>, PlacementError> {
        texts.iter().map(|text| Constraint::parse(text)).collect()
    }

    /// Whether `node` satisfies the constraint.
    pub fn matches(&self, node: &NodeInfo) -> bool {
        let found = match &self.test {
            Test::Text(field, expected) => field.read(node).eq_ignore_ascii_case(expected),
            Test::Ip(pattern) => pattern.contains(&node.addr),
        };
        found != self.negated
    }
}

impl Field {
    fn read<'n>(&self, node: &'n NodeInfo) -> &'n str {
        match self {
            Field::Id => &node.id,
            Field::Hostname => &node.hostname,
            Field::Role => match node.role {
                Role::Manager => "manager",
                Role::Worker => "worker",
            },
            Field::Os => &node.platform.os,
            Field::Arch => &node.platform.arch,
            Field::Label(label) => label.value(node),
        }
    }
}

/// swarmkit's key syntax: `^[a-z_][a-z0-9\-_.]+$`, ignoring case.
fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && key.len() > 1
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The characters besides ASCII letters and digits that swarmkit allows in a value. It leaves
/// out `=`, `!`, `<`, `>` and `~` so that later operators stay unambiguous.
const VALUE_SYMBOLS: &str = ":-_.*()?+[]\\^$|/ \t\n\r\x0c";

/// swarmkit's value syntax: a non-empty run of ASCII letters, digits and [`VALUE_SYMBOLS`].
fn is_valid_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || VALUE_SYMBOLS.contains(c))
}
