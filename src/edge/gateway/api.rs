//! The GraphQL schema of this isolate, shared by its connections.

use std::cell::RefCell;
use std::rc::Rc;

use crate::graphql::Api;

thread_local! {
    static API: RefCell<Option<Rc<Api>>> = const { RefCell::new(None) };
}

/// The GraphQL schema of this isolate, built on first use (never at module start: the
/// runtime refuses randomness, which the schema's hasher needs, at global scope).
pub(super) fn api() -> Rc<Api> {
    API.with(|cell| cell.borrow_mut().get_or_insert_with(|| Rc::new(Api::new())).clone())
}
