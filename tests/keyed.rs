//! The chain object's attached subscriptions (`stream::keyed`): found by key after any
//! removal, and every one served once per fan-out from any starting point.

use std::rc::Rc;

use pms_events::stream::keyed::{Keyed, KeyedList};

#[derive(Debug, PartialEq)]
struct Sub {
    key: Rc<str>,
    served: u32,
}

impl Keyed for Sub {
    fn key(&self) -> &Rc<str> {
        &self.key
    }
}

fn sub(key: &str) -> Sub {
    Sub { key: key.into(), served: 0 }
}

fn keys(list: &mut KeyedList<Sub>, first: usize) -> Vec<String> {
    list.rotated_from(first).map(|s| s.key.to_string()).collect()
}

#[test]
fn every_item_stays_found_by_key_whatever_is_removed() {
    let mut list = KeyedList::default();
    for k in ["a", "b", "c", "d", "e"] {
        list.insert(sub(k));
    }
    assert_eq!(list.remove("b").map(|s| s.key.to_string()), Some("b".into()));
    assert_eq!(keys(&mut list, 0), ["a", "e", "c", "d"], "the last took the removed one's place");
    assert!(list.remove("d").is_some(), "the last one");
    assert!(list.remove("a").is_some(), "the first one");
    assert!(list.remove("a").is_none(), "removed once");
    assert!(list.remove("zzz").is_none());
    for k in ["c", "e"] {
        list.get_mut(k).expect("still found").served += 1;
    }
    assert!(list.get_mut("b").is_none());
    assert_eq!(list.len(), 2);
    assert!(list.remove("c").is_some() && list.remove("e").is_some());
    assert!(list.is_empty());
}

#[test]
fn an_item_with_a_known_key_replaces_the_old_one_in_place() {
    let mut list = KeyedList::default();
    list.insert(sub("a"));
    list.insert(sub("b"));
    list.insert(Sub { key: "a".into(), served: 7 });
    assert_eq!(list.len(), 2);
    assert_eq!(keys(&mut list, 0), ["a", "b"]);
    assert_eq!(list.get_mut("a").map(|s| s.served), Some(7));
}

#[test]
fn a_fan_out_from_any_start_serves_each_once() {
    let mut list = KeyedList::default();
    for k in ["a", "b", "c", "d"] {
        list.insert(sub(k));
    }
    assert_eq!(keys(&mut list, 0), ["a", "b", "c", "d"]);
    assert_eq!(keys(&mut list, 3), ["d", "a", "b", "c"]);
    assert_eq!(keys(&mut list, 4), ["a", "b", "c", "d"]);
    assert_eq!(keys(&mut list, 99), ["a", "b", "c", "d"], "a start past the end is the start");
    for s in list.rotated_from(2) {
        s.served += 1;
    }
    assert!(list.iter_mut().all(|s| s.served == 1));
    assert_eq!(keys(&mut KeyedList::<Sub>::default(), 3), Vec::<String>::new());
}
