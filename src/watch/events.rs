//! The trigger events (`events` option) a watch fires on: `update` by default, `insert` and
//! `delete` on request.

use crate::errors::WatchError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Events {
    pub insert: bool,
    pub update: bool,
    pub delete: bool,
}

impl Events {
    /// Reads event names (any case; repeats allowed); refuses unknown names and an empty list.
    pub fn from_names(names: &[String]) -> Result<Self, WatchError> {
        let mut events = Events::default();
        for name in names {
            match name.to_ascii_lowercase().as_str() {
                "insert" => events.insert = true,
                "update" => events.update = true,
                "delete" => events.delete = true,
                _ => {
                    return Err(WatchError::UnknownEvent {
                        event: name.clone(),
                    })
                }
            }
        }
        if events == Events::default() {
            return Err(WatchError::EmptyList("events"));
        }
        Ok(events)
    }

    fn selected(self) -> impl Iterator<Item = &'static str> {
        [
            ("insert", self.insert),
            ("update", self.update),
            ("delete", self.delete),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| name)
    }

    /// `INSERT OR UPDATE ...`, for CREATE TRIGGER.
    pub fn sql(self) -> String {
        self.selected()
            .map(str::to_ascii_uppercase)
            .collect::<Vec<_>>()
            .join(" OR ")
    }

    /// The lower-case names, in a fixed order, for the catalog.
    pub fn names(self) -> Vec<String> {
        self.selected().map(str::to_owned).collect()
    }
}
