//! The queue on disk as qmail lays it out (split directories, text0 records), the ordered
//! enqueue that makes a message fully queued or not at all, and the injectors' client side.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod enqueue;
pub mod inspect;
pub mod layout;

pub use layout::Queue;
