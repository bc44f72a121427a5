//! [`Named`]: a request's evidence, checks or labels, by name.
//!
//! A request has a handful of each. A `BTreeMap` allocates a node of eleven slots for even
//! one entry (about 640 bytes for evidence, 900 for checks); a boxed slice sorted by name
//! holds exactly the entries, and a name is found by binary search. Simulation keeps every
//! recorded request it read in memory, so this is most of the difference between the two.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Values by name: sorted by name, each name once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named<V>(Box<[(String, V)]>);

impl<V> Default for Named<V> {
    fn default() -> Self {
        Named(Box::default())
    }
}

impl<V> From<BTreeMap<String, V>> for Named<V> {
    /// A map's entries are sorted by name, each name once.
    fn from(map: BTreeMap<String, V>) -> Self {
        Named(map.into_iter().collect())
    }
}

impl<V> Named<V> {
    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// Whether a value is named `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The entries, sorted by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V: Serialize> Serialize for Named<V> {
    /// As a map in name order: the bytes a `BTreeMap` of the same entries serializes to.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &*self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::Named;

    fn map(names: &[&str]) -> BTreeMap<String, usize> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| ((*n).to_owned(), i))
            .collect()
    }

    #[test]
    fn finds_what_the_map_finds() {
        for names in [
            &[][..],
            &["a"],
            &["b", "a"],
            &["ticket", "sbom", "rollback", "a", "z"],
        ] {
            let m = map(names);
            let named = Named::from(m.clone());
            assert_eq!(named.len(), m.len());
            assert_eq!(named.is_empty(), m.is_empty());
            for probe in ["", "a", "b", "c", "rollback", "sbom", "ticket", "z", "zz"] {
                assert_eq!(named.get(probe), m.get(probe), "{probe} in {names:?}");
                assert_eq!(named.contains_key(probe), m.contains_key(probe));
            }
            assert!(named.iter().eq(m.iter()));
        }
    }

    #[test]
    fn serializes_as_the_map_does() {
        let m = map(&["b", "a", "c"]);
        assert_eq!(
            serde_json::to_string(&Named::from(m.clone())).unwrap(),
            serde_json::to_string(&m).unwrap()
        );
        assert_eq!(
            serde_json::to_string(&Named::<usize>::default()).unwrap(),
            "{}"
        );
    }
}
