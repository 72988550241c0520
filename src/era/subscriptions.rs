//! The subscriptions of one session (docs/dual-era.md §2.4): each modern client's
//! open `subscriptions/listen` with what it asked for, and how many of them (and of
//! a legacy client's `resources/subscribe` calls) need each resource URI subscribed
//! upstream. Pure: the session sends the messages this table says are due.

use std::collections::HashMap;

use serde_json::Value;

use crate::jsonrpc::Id;
use crate::router::catalog::ListKind;

/// Open listens per session; one more is refused (the TypeScript server's default
/// `maxSubscriptions`), so a client cannot grow the table without bound.
pub const MAX_LISTENS: usize = 1024;

/// The `_meta` key that tags every notification of a listen with its request id.
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// What one listen asked for (`params.notifications`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Per [`ListKind`], by its index: `toolsListChanged`, `promptsListChanged`,
    /// `resourcesListChanged`.
    pub lists: [bool; 3],
    /// `resourceSubscriptions`, in the order asked, without repeats.
    pub uris: Vec<String>,
    /// `taskIds` (of the tasks extension, seps/2663), in the order asked, without
    /// repeats: ours in a client's listen, the server's in our listen upstream.
    pub task_ids: Vec<String>,
}

impl Filter {
    /// Reads `params.notifications` of a `subscriptions/listen`; members of the
    /// wrong type count as not asked.
    #[must_use]
    pub fn parse(params: &Value) -> Self {
        let asked = &params["notifications"];
        let flag = |key: &str| asked.get(key) == Some(&Value::Bool(true));
        Self {
            lists: [
                flag("toolsListChanged"),
                flag("promptsListChanged"),
                flag("resourcesListChanged"),
            ],
            uris: strings(&asked["resourceSubscriptions"]),
            task_ids: strings(&asked["taskIds"]),
        }
    }

    /// Whether `params` of a listen name `taskIds` at all (a non-empty array): what
    /// needs the client to declare the tasks extension (seps/2663).
    #[must_use]
    pub fn asks_task_ids(params: &Value) -> bool {
        params["notifications"]["taskIds"]
            .as_array()
            .is_some_and(|ids| !ids.is_empty())
    }

    /// The `notifications` object of the acknowledgement: what is honoured.
    #[must_use]
    pub fn to_ack(&self) -> Value {
        let mut out = serde_json::Map::new();
        let keys = [
            "toolsListChanged",
            "promptsListChanged",
            "resourcesListChanged",
        ];
        for (key, asked) in keys.into_iter().zip(self.lists) {
            if asked {
                out.insert(key.to_owned(), Value::Bool(true));
            }
        }
        if !self.uris.is_empty() {
            out.insert("resourceSubscriptions".to_owned(), self.uris.clone().into());
        }
        if !self.task_ids.is_empty() {
            out.insert("taskIds".to_owned(), self.task_ids.clone().into());
        }
        Value::Object(out)
    }
}

/// The strings of a JSON array, in order, without repeats; members of another type
/// count as not asked.
fn strings(array: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in array
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// Too many listens open at once.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Subscription limit reached")]
pub struct LimitReached;

/// How often one process of a modern server may close our listen before it is
/// left closed (a server that answers every listen at once would make a loop).
pub const MAX_REOPEN: u32 = 3;

/// mcp-warden's own `subscriptions/listen` to one modern server: one per server,
/// for the union of what the session needs of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct UpstreamListen {
    /// Our id of the open listen; `None`: none open.
    id: Option<u64>,
    /// What it asked.
    filter: Filter,
    /// How often this process closed it.
    closures: u32,
}

/// What to do about mcp-warden's listen on a modern server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamChange {
    /// It asks what is needed already.
    Keep,
    /// Cancel `cancel` (if one is open) and open one for the new filter (if not empty).
    Replace { cancel: Option<u64> },
}

/// The open listens and the upstream subscriptions they need.
#[derive(Debug, Default)]
pub struct Subscriptions {
    /// Client listen id → its honoured filter.
    listens: HashMap<Id, Filter>,
    /// Resource URI → how many listens and legacy subscribe calls need it.
    counts: HashMap<String, usize>,
    /// The URIs a legacy client subscribed to (a set: subscribing twice is once).
    legacy: std::collections::HashSet<String>,
    /// Slot index → our listen to that modern server.
    upstream: HashMap<usize, UpstreamListen>,
}

impl Subscriptions {
    /// Opens listen `id` with what is honoured of it; gives the URIs that now need
    /// an upstream subscription (their count went from zero to one).
    ///
    /// # Errors
    /// [`LimitReached`] when [`MAX_LISTENS`] are open.
    pub fn open(&mut self, id: Id, filter: Filter) -> Result<Vec<String>, LimitReached> {
        if self.listens.len() >= MAX_LISTENS && !self.listens.contains_key(&id) {
            return Err(LimitReached);
        }
        let first: Vec<String> = filter
            .uris
            .iter()
            .filter(|uri| self.count_up(uri))
            .cloned()
            .collect();
        if let Some(old) = self.listens.insert(id, filter) {
            // A reused id replaces the listen (the session refuses ids in flight, so
            // this is defensive): what it held is let go.
            for uri in &old.uris {
                self.count_down(uri);
            }
        }
        Ok(first)
    }

    /// Ends listen `id`; gives its filter and the URIs no longer needed upstream.
    pub fn close(&mut self, id: &Id) -> Option<(Filter, Vec<String>)> {
        let filter = self.listens.remove(id)?;
        let last = filter
            .uris
            .iter()
            .filter(|uri| self.count_down(uri))
            .cloned()
            .collect();
        Some((filter, last))
    }

    /// A legacy client's `resources/subscribe`: whether it is the first need of `uri`.
    pub fn subscribe(&mut self, uri: &str) -> bool {
        self.legacy.insert(uri.to_owned()) && self.count_up(uri)
    }

    /// A legacy client's `resources/unsubscribe`: whether nothing needs `uri` any
    /// more (only then is it unsubscribed upstream). An unsubscribe of a URI the
    /// client did not subscribe to is passed on (`true`) unless a listen needs it.
    pub fn unsubscribe(&mut self, uri: &str) -> bool {
        if self.legacy.remove(uri) {
            self.count_down(uri)
        } else {
            !self.counts.contains_key(uri)
        }
    }

    /// Whether `id` is an open listen.
    #[must_use]
    pub fn is_open(&self, id: &Id) -> bool {
        self.listens.contains_key(id)
    }

    /// The listens that asked for changes of `kind`.
    pub fn asking(&self, kind: ListKind) -> impl Iterator<Item = &Id> {
        self.listens
            .iter()
            .filter(move |(_, f)| f.lists[kind.index()])
            .map(|(id, _)| id)
    }

    /// The listens that name `uri`.
    pub fn naming<'a>(&'a self, uri: &'a str) -> impl Iterator<Item = &'a Id> {
        self.listens
            .iter()
            .filter(move |(_, f)| f.uris.iter().any(|u| u == uri))
            .map(|(id, _)| id)
    }

    /// The listens that name task `id` (ours).
    pub fn naming_task<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Id> {
        self.listens
            .iter()
            .filter(move |(_, f)| f.task_ids.iter().any(|t| t == id))
            .map(|(id, _)| id)
    }

    /// Every task id (ours) some listen names, each once.
    #[must_use]
    pub fn task_ids(&self) -> std::collections::BTreeSet<&str> {
        self.listens
            .values()
            .flat_map(|f| f.task_ids.iter().map(String::as_str))
            .collect()
    }

    /// Every URI subscribed upstream (to subscribe again after a restart).
    pub fn uris(&self) -> impl Iterator<Item = &str> {
        self.counts.keys().map(String::as_str)
    }

    /// Whether `uri` is needed by a listen or a legacy subscribe call.
    #[must_use]
    pub fn is_needed(&self, uri: &str) -> bool {
        self.counts.contains_key(uri)
    }

    /// A new process of modern server `slot`: nothing of ours is open there.
    pub fn forget_upstream(&mut self, slot: usize) {
        self.upstream.remove(&slot);
    }

    /// The listen mcp-warden should have open on `slot` is `filter` (empty: none):
    /// what to do about the one open there. After a replace,
    /// [`Self::opened_upstream`] records the new one.
    #[must_use]
    pub fn upstream_change(&self, slot: usize, filter: &Filter) -> UpstreamChange {
        let current = self.upstream.get(&slot);
        let open = current.and_then(|u| u.id);
        let empty = *filter == Filter::default();
        match current {
            Some(u) if u.id.is_some() && u.filter == *filter => UpstreamChange::Keep,
            _ if empty && open.is_none() => UpstreamChange::Keep,
            _ => UpstreamChange::Replace { cancel: open },
        }
    }

    /// Records our listen `id` (`None`: none) on `slot` asking `filter`.
    pub fn opened_upstream(&mut self, slot: usize, id: Option<u64>, filter: Filter) {
        let entry = self.upstream.entry(slot).or_default();
        entry.id = id;
        entry.filter = filter;
    }

    /// Whether `id` is our open listen on `slot`.
    #[must_use]
    pub fn is_upstream(&self, slot: usize, id: u64) -> bool {
        self.upstream.get(&slot).and_then(|u| u.id) == Some(id)
    }

    /// The server closed our listen `id` on `slot`: whether to open it again (it
    /// was the current one, and this process has not closed it too often).
    pub fn upstream_closed(&mut self, slot: usize, id: u64) -> bool {
        let Some(u) = self.upstream.get_mut(&slot).filter(|u| u.id == Some(id)) else {
            return false;
        };
        u.id = None;
        u.closures += 1;
        u.closures <= MAX_REOPEN
    }

    /// Ends every listen (at shutdown); gives their ids.
    pub fn drain(&mut self) -> Vec<Id> {
        self.counts.clear();
        self.legacy.clear();
        self.listens.drain().map(|(id, _)| id).collect()
    }

    fn count_up(&mut self, uri: &str) -> bool {
        let n = self.counts.entry(uri.to_owned()).or_insert(0);
        *n += 1;
        *n == 1
    }

    fn count_down(&mut self, uri: &str) -> bool {
        match self.counts.get_mut(uri) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.counts.remove(uri);
                true
            }
            None => false,
        }
    }
}

/// `params` of a notification with the subscription tag removed (and `_meta` too,
/// when that empties it), every other member kept: for a legacy client.
#[must_use]
pub fn untagged(params: Option<&str>) -> Option<Value> {
    let mut params = params.and_then(|p| serde_json::from_str::<Value>(p).ok())?;
    if let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) {
        meta.remove(SUBSCRIPTION_ID);
        if meta.is_empty()
            && let Some(all) = params.as_object_mut()
        {
            all.remove("_meta");
        }
    }
    Some(params)
}

/// `params` of a notification tagged for listen `id`: `_meta[subscriptionId]` set
/// to the id (its JSON text), every other member kept.
#[must_use]
pub fn tagged(params: Option<&str>, id: &Id) -> Value {
    let mut params = params
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    let tag = serde_json::from_str::<Value>(id.as_str()).unwrap_or(Value::Null);
    if !params["_meta"].is_object() {
        params["_meta"] = Value::Object(serde_json::Map::new());
    }
    params["_meta"][SUBSCRIPTION_ID] = tag;
    params
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filter(uris: &[&str]) -> Filter {
        Filter {
            lists: [true, false, false],
            uris: uris.iter().map(|&u| u.to_owned()).collect(),
            task_ids: Vec::new(),
        }
    }

    #[test]
    fn parse_reads_flags_and_uris_and_ignores_wrong_types() {
        let params = json!({"notifications": {
            "toolsListChanged": true, "promptsListChanged": "yes",
            "resourceSubscriptions": ["a://1", 7, "a://1", "a://2"],
            "taskIds": ["mwt-1", "mwt-1", false]}});
        let f = Filter::parse(&params);
        assert_eq!(f.lists, [true, false, false]);
        assert_eq!(f.uris, ["a://1", "a://2"]);
        assert_eq!(f.task_ids, ["mwt-1"]);
        assert_eq!(
            f.to_ack(),
            json!({"toolsListChanged": true, "resourceSubscriptions": ["a://1", "a://2"],
                "taskIds": ["mwt-1"]})
        );
        assert!(Filter::asks_task_ids(&params));
        assert!(!Filter::asks_task_ids(
            &json!({"notifications": {"taskIds": []}})
        ));
        assert_eq!(Filter::parse(&json!(null)), Filter::default());
    }

    #[test]
    fn uris_are_reference_counted_across_listens_and_legacy_calls() {
        let mut s = Subscriptions::default();
        assert_eq!(
            s.open(Id::number(1), filter(&["a://1"])),
            Ok(vec!["a://1".to_owned()])
        );
        assert_eq!(
            s.open(Id::number(2), filter(&["a://1", "a://2"])),
            Ok(vec!["a://2".to_owned()])
        );
        assert!(!s.subscribe("a://1"));
        let (_, last) = s.close(&Id::number(1)).expect("open");
        assert!(last.is_empty());
        let (_, last) = s.close(&Id::number(2)).expect("open");
        assert_eq!(last, ["a://2"]);
        assert!(s.unsubscribe("a://1"));
        assert!(s.unsubscribe("never"));
        assert!(s.close(&Id::number(2)).is_none());
        assert_eq!(s.uris().count(), 0);
    }

    #[test]
    fn the_limit_refuses_one_more_and_asking_and_naming_select() {
        let mut s = Subscriptions::default();
        for n in 0..MAX_LISTENS as u64 {
            s.open(Id::number(n), Filter::default()).expect("room");
        }
        assert_eq!(
            s.open(Id::number(99_999), Filter::default()),
            Err(LimitReached)
        );
        let mut s = Subscriptions::default();
        s.open(Id::number(1), filter(&["a://1"])).expect("room");
        s.open(Id::number(2), Filter::default()).expect("room");
        assert_eq!(
            s.asking(ListKind::Tools).collect::<Vec<_>>(),
            [&Id::number(1)]
        );
        assert_eq!(s.asking(ListKind::Prompts).count(), 0);
        assert_eq!(s.naming("a://1").collect::<Vec<_>>(), [&Id::number(1)]);
        let tasks = Filter {
            task_ids: vec!["mwt-a".to_owned(), "mwt-b".to_owned()],
            ..Filter::default()
        };
        s.open(Id::number(3), tasks).expect("room");
        assert_eq!(s.naming_task("mwt-b").collect::<Vec<_>>(), [&Id::number(3)]);
        assert_eq!(s.naming_task("mwt-c").count(), 0);
        assert_eq!(
            s.task_ids().into_iter().collect::<Vec<_>>(),
            ["mwt-a", "mwt-b"]
        );
        assert_eq!(s.drain().len(), 3);
        assert!(!s.is_open(&Id::number(1)));
    }

    #[test]
    fn an_upstream_listen_changes_only_when_its_filter_does_and_reopens_at_most_thrice() {
        let mut s = Subscriptions::default();
        let f = filter(&["a://1"]);
        assert_eq!(
            s.upstream_change(0, &Filter::default()),
            UpstreamChange::Keep
        );
        assert_eq!(
            s.upstream_change(0, &f),
            UpstreamChange::Replace { cancel: None }
        );
        s.opened_upstream(0, Some(5), f.clone());
        assert_eq!(s.upstream_change(0, &f), UpstreamChange::Keep);
        assert!(s.is_upstream(0, 5) && !s.is_upstream(1, 5));
        assert_eq!(
            s.upstream_change(0, &Filter::default()),
            UpstreamChange::Replace { cancel: Some(5) }
        );
        for n in 0..MAX_REOPEN {
            assert!(s.upstream_closed(0, 5 + u64::from(n)));
            s.opened_upstream(0, Some(6 + u64::from(n)), f.clone());
        }
        assert!(!s.upstream_closed(0, 5 + u64::from(MAX_REOPEN)));
        assert!(!s.upstream_closed(0, 99));
        s.forget_upstream(0);
        assert_eq!(
            s.upstream_change(0, &f),
            UpstreamChange::Replace { cancel: None }
        );
    }

    #[test]
    fn untagged_removes_the_tag_and_an_emptied_meta() {
        let p = untagged(Some(
            r#"{"uri":"a://1","_meta":{"io.modelcontextprotocol/subscriptionId":4}}"#,
        ));
        assert_eq!(p, Some(json!({"uri": "a://1"})));
        let p = untagged(Some(
            r#"{"uri":"a://1","_meta":{"k":1,"io.modelcontextprotocol/subscriptionId":4}}"#,
        ));
        assert_eq!(p, Some(json!({"uri": "a://1", "_meta": {"k": 1}})));
    }

    #[test]
    fn tagged_sets_the_id_and_keeps_the_rest() {
        let id = Id::from_json(r#""c-1""#).expect("id");
        let p = tagged(Some(r#"{"uri":"a://1","_meta":{"k":1}}"#), &id);
        assert_eq!(
            p,
            json!({"uri": "a://1", "_meta": {"k": 1, SUBSCRIPTION_ID: "c-1"}})
        );
        assert_eq!(
            tagged(None, &Id::number(7)),
            json!({"_meta": {SUBSCRIPTION_ID: 7}})
        );
    }
}
