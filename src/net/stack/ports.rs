//! Local ports for the stack's outgoing connections and flows.

/// The first port handed out: everything below is left to well-known services.
const FIRST: u16 = 1024;

/// A set of free local ports, handed out round-robin so that a port just released is used again
/// as late as possible (its last connection may still linger in a peer's TIME-WAIT).
pub struct LocalPorts {
    used: Box<[u64; 1024]>,
    next: u16,
    in_use: usize,
}

impl LocalPorts {
    /// Every port from 1024 up free.
    pub fn new() -> LocalPorts {
        LocalPorts {
            used: Box::new([0; 1024]),
            next: FIRST,
            in_use: 0,
        }
    }

    /// Takes the next free port; `None` when all are taken.
    pub fn take(&mut self) -> Option<u16> {
        if self.in_use > usize::from(u16::MAX - FIRST) {
            return None;
        }
        loop {
            let port = self.next;
            self.next = if port == u16::MAX { FIRST } else { port + 1 };
            let (word, bit) = (usize::from(port / 64), port % 64);
            if self.used[word] & (1 << bit) == 0 {
                self.used[word] |= 1 << bit;
                self.in_use += 1;
                return Some(port);
            }
        }
    }

    /// Gives `port` back.
    pub fn release(&mut self, port: u16) {
        let (word, bit) = (usize::from(port / 64), port % 64);
        if self.used[word] & (1 << bit) != 0 {
            self.used[word] &= !(1 << bit);
            self.in_use -= 1;
        }
    }
}

impl Default for LocalPorts {
    fn default() -> Self {
        LocalPorts::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_go_round_and_skip_those_in_use() {
        let mut ports = LocalPorts::new();
        assert_eq!(ports.take(), Some(1024));
        assert_eq!(ports.take(), Some(1025));
        ports.release(1024);
        // Released ports come back only after a full turn.
        assert_eq!(ports.take(), Some(1026));
        let mut count = 3;
        while ports.take().is_some() {
            count += 1;
        }
        // Every port of 1024..=65535 once, and 1024 a second time after its release.
        assert_eq!(count, 65536 - 1024 + 1);
        ports.release(4000);
        assert_eq!(ports.take(), Some(4000));
        assert_eq!(ports.take(), None);
    }
}
