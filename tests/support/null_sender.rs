//! A notification that names its kind, and a sender that does nothing with it but read its own
//! field, as a real sender reads its connection (so the sender is not a zero-sized value the
//! compiler can forget): what the send-path benchmarks and `send_loop` send through `Guarded`.
//! Included with `#[path = "../tests/support/null_sender.rs"] mod null_sender;`.

use std::hint::black_box;

use spikebreaker::{Notification, Sender};

#[derive(serde::Serialize)]
pub struct Note(pub &'static str);

impl Notification for Note {
    fn kind(&self) -> &str {
        self.0
    }
}

pub struct NullSender(pub u64);

impl Sender<Note> for NullSender {
    type Output = ();
    type Error = ();

    fn send(&self, note: Note) -> Result<(), ()> {
        black_box((note, self.0));
        Ok(())
    }
}
