//! A thread running one mio event loop, and the handle that commands it: what the routing mesh
//! ([`super::mesh`]) and the VIP balancer ([`super::balancer`]) are each built on.
//!
//! The loop owns all its state, so it takes no lock: the handle reaches it only through a
//! channel of commands, and wakes it with a [`mio::Waker`] so that a command waiting never
//! waits for the next packet. Dropping the handle closes the channel, which ends the loop, and
//! joins the thread.

use std::io;
use std::sync::mpsc::{self, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::event::Event;
use mio::{Events, Poll, Token};

/// The waker's token, which no event source of a loop may take.
pub const WAKER: Token = Token(usize::MAX);

/// What a loop does with its turn; [`LoopThread`] runs it.
pub trait EventLoop: Send + 'static {
    /// What the handle sends the loop.
    type Command: Send + 'static;

    /// How many events one poll takes at most (more wait for the next).
    const EVENTS: usize;

    /// The poll every event source of the loop is registered in.
    fn poll(&mut self) -> &mut Poll;

    /// How long the next poll may wait for events.
    fn timeout(&mut self) -> Duration;

    /// Applies a command from the handle.
    fn command(&mut self, command: Self::Command);

    /// Notes an event of one of the loop's sources (never the waker's).
    fn event(&mut self, event: &Event);

    /// Does the work the events of a poll (or its timeout) asked for.
    fn turn(&mut self);
}

/// The handle of a thread running an [`EventLoop`] that takes commands `C`.
pub struct LoopThread<C> {
    /// `None` only while dropping: closing the channel is what stops the loop.
    commands: Option<mpsc::Sender<C>>,
    waker: mio::Waker,
    /// The thread's name, and the loop's in messages.
    name: &'static str,
    thread: Option<JoinHandle<()>>,
}

impl<C: Send + 'static> LoopThread<C> {
    /// Starts a thread called `name` running the loop `make` builds around its poll.
    pub fn spawn<L>(
        name: &'static str,
        make: impl FnOnce(Poll) -> io::Result<L>,
    ) -> io::Result<Self>
    where
        L: EventLoop<Command = C>,
    {
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER)?;
        let (commands, receiver) = mpsc::channel();
        let looper = make(poll)?;
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(looper, receiver, name))?;
        Ok(LoopThread {
            commands: Some(commands),
            waker,
            name,
            thread: Some(thread),
        })
    }

    /// Hands the loop `command` and wakes it; an error if the loop has ended.
    pub fn send(&self, command: C) -> io::Result<()> {
        let stopped = || io::Error::other(format!("the {} thread has stopped", self.name));
        let commands = self.commands.as_ref().ok_or_else(stopped)?;
        commands.send(command).map_err(|_| stopped())?;
        self.waker.wake()
    }
}

impl<C> Drop for LoopThread<C> {
    /// Ends the loop (with the commands sent before) and waits for its thread.
    fn drop(&mut self) {
        self.commands = None;
        let _ = self.waker.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Polls and turns `looper` until its handle is dropped (or the poll fails).
fn run<L: EventLoop>(mut looper: L, commands: mpsc::Receiver<L::Command>, name: &str) {
    let mut events = Events::with_capacity(L::EVENTS);
    loop {
        let timeout = looper.timeout();
        if let Err(e) = looper.poll().poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::error!("the {name}'s event loop failed: {e}");
                return;
            }
        }
        for event in &events {
            if event.token() != WAKER {
                looper.event(event);
                continue;
            }
            loop {
                match commands.try_recv() {
                    Ok(command) => looper.command(command),
                    Err(TryRecvError::Empty) => break,
                    // Only after every command sent before the handle went.
                    Err(TryRecvError::Disconnected) => return,
                }
            }
        }
        looper.turn();
    }
}
