//! An ordered list whose items are also found by key in constant time: the chain object's
//! attached subscriptions, served in this order by every fan-out and found by key on every
//! acknowledgement and close.

use std::collections::HashMap;
use std::rc::Rc;

/// An item of a [`KeyedList`]: its key never changes while it is in the list.
pub trait Keyed {
    fn key(&self) -> &Rc<str>;
}

pub struct KeyedList<T> {
    list: Vec<T>,
    index: HashMap<Rc<str>, usize>,
}

impl<T> Default for KeyedList<T> {
    fn default() -> Self {
        KeyedList { list: Vec::new(), index: HashMap::new() }
    }
}

impl<T: Keyed> KeyedList<T> {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Adds an item at the end; one with the same key is replaced where it stands.
    pub fn insert(&mut self, item: T) {
        if let Some(&at) = self.index.get(item.key()) {
            self.list[at] = item;
            return;
        }
        self.index.insert(item.key().clone(), self.list.len());
        self.list.push(item);
    }

    /// Removes the item `key`; the last item takes its place in the order.
    pub fn remove(&mut self, key: &str) -> Option<T> {
        let at = self.index.remove(key)?;
        let removed = self.list.swap_remove(at);
        if let Some(moved) = self.list.get(at) {
            self.index.insert(moved.key().clone(), at);
        }
        Some(removed)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut T> {
        let at = *self.index.get(key)?;
        self.list.get_mut(at)
    }

    /// Every item once, from the `first`-th to the end, then from the start (a fan-out
    /// starts where the last one left off, so none is always served last).
    pub fn rotated_from(&mut self, first: usize) -> impl Iterator<Item = &mut T> {
        let first = first.min(self.list.len());
        let (before, after) = self.list.split_at_mut(first);
        after.iter_mut().chain(before.iter_mut())
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.list.iter_mut()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.list.iter()
    }
}
