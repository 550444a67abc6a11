//! Streaming over WebSocket: the graphql-transport-ws session (`protocol`), what a
//! subscription may stream (`subscribe`), the chain object's delivery from the log
//! (`fanout`) and its saved cursors (`cursors`), and the gateway's relay of it to the
//! vendor (`relay`). All without I/O: the edge glue performs what these decide.

pub mod cursors;
pub mod fanout;
pub mod protocol;
pub mod relay;
pub mod subscribe;
