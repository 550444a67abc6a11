//! Streaming over WebSocket, without I/O: the vendor's connection (`connect` admits it,
//! `protocol` is its graphql-transport-ws session and frame codec, `slow_consumer` its read
//! check), what a subscription may stream (`subscribe`) and how it is described to a chain's
//! object (`spec`), the object's delivery from the log (`pump`, `schedule`), its attached
//! subscriptions (`keyed`) and saved cursors (`cursors`), the internal wire between the two
//! (`wire`), and the gateway's relay of it to the vendor (`relay`). The edge glue performs
//! what these decide.

pub mod connect;
pub mod cursors;
pub mod keyed;
pub mod protocol;
pub mod pump;
pub mod relay;
pub mod schedule;
pub mod slow_consumer;
pub mod spec;
pub mod subscribe;
pub mod wire;
