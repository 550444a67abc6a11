//! Streaming over WebSocket: the graphql-transport-ws session (`protocol`), what a
//! subscription may stream (`subscribe`), the chain object's delivery from the log
//! (`fanout`), its attached subscriptions (`keyed`) and saved cursors (`cursors`), and the
//! gateway's relay of it to the vendor (`relay`). All without I/O: the edge glue performs
//! what these decide.

pub mod cursors;
pub mod fanout;
pub mod keyed;
pub mod protocol;
pub mod relay;
pub mod subscribe;
