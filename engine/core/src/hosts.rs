//! The gateway's host resolver: what names and addresses a host goes by, so that
//! events carry host keys ([`gatehouse_events::host`]) and chains compare hosts as
//! hosts.
//!
//! Sources, in order: the host itself (a name, or an address in any standard
//! spelling), the targets' configured `aliases`, the hosts file (`/etc/hosts` unless
//! configured; re-read when it changes), and the system resolver (`getaddrinfo`,
//! bounded by a timeout and cached). Forward lookups give addresses; an address
//! gives the hosts-file names listed for it. Nothing here refuses anything: a name
//! that resolves to nothing keeps its own keys, which still match the same spelling
//! and its short or qualified forms.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use gatehouse_events::host;

/// How long a system-resolver answer (or its absence) is kept.
const DNS_TTL: Duration = Duration::from_secs(60);
/// Most names the DNS cache holds.
const DNS_CACHE: usize = 4096;
/// How often the hosts file's modification time is checked.
const HOSTS_RECHECK: Duration = Duration::from_secs(1);
/// Most addresses or names taken from one source for one host.
const MAX_PER_SOURCE: usize = 16;

/// Resolver settings (`[resolver]` in `gatehouse.toml`).
#[derive(Debug, Clone)]
pub struct ResolverOptions {
    /// Hosts file (`/etc/hosts`); `None` reads none.
    pub hosts_file: Option<PathBuf>,
    /// Ask the system resolver for names the hosts file does not list.
    pub dns: bool,
    /// Longest wait for the system resolver, per event.
    pub timeout: Duration,
    /// Groups of names that are one host: each target's upstream host and its
    /// configured `aliases`.
    pub aliases: Vec<Vec<String>>,
}

impl Default for ResolverOptions {
    fn default() -> Self {
        Self {
            hosts_file: Some(PathBuf::from("/etc/hosts")),
            dns: true,
            timeout: Duration::from_millis(250),
            aliases: Vec::new(),
        }
    }
}

#[derive(Default)]
struct HostsFile {
    modified: Option<SystemTime>,
    checked: Option<Instant>,
    by_name: HashMap<String, Vec<IpAddr>>,
    by_addr: HashMap<IpAddr, Vec<String>>,
}

/// Names and addresses one host goes by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Canonical names (the host first when it is a name).
    pub names: Vec<String>,
    /// Addresses.
    pub addresses: Vec<IpAddr>,
}

impl Resolved {
    fn name(&mut self, n: &str) {
        if let Some(n) = host::normalize(n)
            && !host::is_address(&n)
            && !self.names.contains(&n)
        {
            self.names.push(n);
        }
    }

    fn address(&mut self, a: IpAddr) {
        let a = a.to_canonical();
        if !self.addresses.contains(&a) {
            self.addresses.push(a);
        }
    }
}

/// See the module documentation.
pub struct HostResolver {
    options: ResolverOptions,
    /// Alias groups, normalised.
    aliases: Vec<Vec<String>>,
    file: Mutex<HostsFile>,
    dns: Mutex<HashMap<String, (Instant, Vec<IpAddr>)>>,
}

impl std::fmt::Debug for HostResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostResolver")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Default for HostResolver {
    fn default() -> Self {
        Self::new(ResolverOptions::default())
    }
}

impl HostResolver {
    /// A resolver with `options`.
    pub fn new(options: ResolverOptions) -> Self {
        let aliases = options
            .aliases
            .iter()
            .map(|g| g.iter().filter_map(|n| host::normalize(n)).collect())
            .collect();
        Self {
            options,
            aliases,
            file: Mutex::new(HostsFile::default()),
            dns: Mutex::new(HashMap::new()),
        }
    }

    /// Everything `name` goes by. Empty when `name` is not a host name or address.
    pub async fn resolve(&self, name: &str) -> Resolved {
        let mut r = Resolved::default();
        let Some(n) = host::normalize(name) else {
            return r;
        };
        let mut seeds = vec![n];
        for g in &self.aliases {
            if g.iter().any(|x| seeds.contains(x)) {
                seeds.extend(g.iter().cloned());
            }
        }
        for s in &seeds {
            match s.parse::<IpAddr>() {
                Ok(a) => r.address(a),
                Err(_) => r.name(s),
            }
        }
        self.add_file_entries(&mut r);
        if self.options.dns {
            let unresolved: Vec<String> = r
                .names
                .iter()
                .filter(|n| !self.file_lists(n))
                .cloned()
                .collect();
            for n in unresolved {
                for a in self.dns(&n).await {
                    r.address(a);
                }
            }
            // Addresses the resolver gave may be listed in the hosts file.
            self.add_file_entries(&mut r);
        }
        r
    }

    /// Keys of a session's target: `host` as configured and its `aliases`.
    pub async fn target_keys(&self, host: &str, aliases: &[String]) -> Vec<String> {
        let mut all = self.resolve(host).await;
        for a in aliases {
            let r = self.resolve(a).await;
            r.names.iter().for_each(|n| all.name(n));
            r.addresses.into_iter().for_each(|a| all.address(a));
        }
        host::target_keys(all.names.iter().map(String::as_str), all.addresses)
    }

    /// Keys of values read from a result, together (each value's own keys, deduplicated);
    /// values that are not host names or addresses give none.
    pub async fn value_keys(&self, values: &[String]) -> Vec<String> {
        let mut keys = Vec::new();
        let lookups = async {
            for v in values {
                let r = self.resolve(v).await;
                for k in host::value_keys(r.names.iter().map(String::as_str), r.addresses) {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
        };
        // Each lookup has its own bound; this one keeps a run of slow names from
        // holding the result (and the session's next request) for long.
        let _ = tokio::time::timeout(self.options.timeout * 4, lookups).await;
        keys
    }

    /// Adds hosts-file addresses of every name and names of every address.
    fn add_file_entries(&self, r: &mut Resolved) {
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.refresh(&mut file);
        for n in r.names.clone() {
            for a in file
                .by_name
                .get(&n)
                .into_iter()
                .flatten()
                .take(MAX_PER_SOURCE)
            {
                r.address(*a);
            }
        }
        for a in r.addresses.clone() {
            for n in file
                .by_addr
                .get(&a)
                .into_iter()
                .flatten()
                .take(MAX_PER_SOURCE)
            {
                r.name(n);
            }
        }
    }

    fn file_lists(&self, name: &str) -> bool {
        self.file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_name
            .contains_key(name)
    }

    /// Re-reads the hosts file when it changed (checked at most once a second).
    fn refresh(&self, file: &mut HostsFile) {
        let Some(path) = &self.options.hosts_file else {
            return;
        };
        let now = Instant::now();
        if file
            .checked
            .is_some_and(|c| now.duration_since(c) < HOSTS_RECHECK)
        {
            return;
        }
        file.checked = Some(now);
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if modified.is_some() && modified == file.modified {
            return;
        }
        file.modified = modified;
        file.by_name.clear();
        file.by_addr.clear();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(error) => {
                tracing::warn!(message = "Cannot read the hosts file; hosts are compared without it.", path = %path.display(), %error);
                return;
            }
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let Some(addr) = fields.next().and_then(|a| a.parse::<IpAddr>().ok()) else {
                continue;
            };
            let addr = addr.to_canonical();
            for n in fields.filter_map(host::normalize) {
                let addrs = file.by_name.entry(n.clone()).or_default();
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
                let names = file.by_addr.entry(addr).or_default();
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
    }

    /// The system resolver's addresses for `name` (cached; empty on failure or timeout).
    async fn dns(&self, name: &str) -> Vec<IpAddr> {
        let now = Instant::now();
        if let Some((at, addrs)) = self
            .dns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            && now.duration_since(*at) < DNS_TTL
        {
            return addrs.clone();
        }
        let lookup = tokio::net::lookup_host((name.to_owned(), 0));
        let addrs: Vec<IpAddr> = match tokio::time::timeout(self.options.timeout, lookup).await {
            Ok(Ok(it)) => {
                let mut v: Vec<IpAddr> = Vec::new();
                for a in it.map(|s| s.ip().to_canonical()) {
                    if !v.contains(&a) && v.len() < MAX_PER_SOURCE {
                        v.push(a);
                    }
                }
                v
            }
            Ok(Err(_)) | Err(_) => Vec::new(),
        };
        let mut cache = self
            .dns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= DNS_CACHE {
            cache.retain(|_, (at, _)| now.duration_since(*at) < DNS_TTL);
            if cache.len() >= DNS_CACHE {
                cache.clear();
            }
        }
        cache.insert(name.to_owned(), (now, addrs.clone()));
        addrs
    }
}

/// The host part of a target's `upstream` (`host:port`, `[v6]:port`,
/// `https://host:port/path`).
pub fn upstream_host(upstream: &str) -> &str {
    let rest = upstream.split_once("://").map_or(upstream, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    fn resolver(hosts: &str, aliases: Vec<Vec<String>>) -> (tempfile::TempDir, HostResolver) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, hosts).unwrap();
        let r = HostResolver::new(ResolverOptions {
            hosts_file: Some(path),
            dns: false,
            timeout: Duration::from_millis(100),
            aliases,
        });
        (dir, r)
    }

    #[tokio::test]
    async fn names_addresses_and_aliases_are_one_host() {
        let (_d, r) = resolver(
            "# comment\n10.0.0.5  db-1.internal db-1 # the primary\n10.0.0.6 db-2.internal\n",
            vec![vec!["10.0.0.5".into(), "pg-primary.prod".into()]],
        );
        let target = r.target_keys("10.0.0.5", &[]).await;
        for value in [
            "db-1",
            "DB-1.internal.",
            "10.0.0.5",
            "::ffff:10.0.0.5",
            "pg-primary.prod",
            "pg-primary",
            // The hosts file calls the target `db-1` too: a short name, which any
            // `db-1.*` matches.
            "db-1.staging",
        ] {
            let keys = r.value_keys(&[value.to_owned()]).await;
            assert!(
                host::same(&keys, &target),
                "{value}: {keys:?} vs {target:?}"
            );
        }
        for value in [
            "db-2",
            "db-2.internal",
            "10.0.0.6",
            "db-2.staging",
            "db",
            "internal",
        ] {
            let keys = r.value_keys(&[value.to_owned()]).await;
            assert!(
                !host::same(&keys, &target),
                "{value}: {keys:?} vs {target:?}"
            );
        }
        // Configured by name, read as an address.
        let target = r.target_keys("db-1.internal", &[]).await;
        assert!(host::same(
            &r.value_keys(&["10.0.0.5".into()]).await,
            &target
        ));
    }

    #[test]
    fn upstream_hosts() {
        assert_eq!(upstream_host("db-1:5432"), "db-1");
        assert_eq!(upstream_host("[::1]:22"), "::1");
        assert_eq!(
            upstream_host("https://k8s.internal:6443/base"),
            "k8s.internal"
        );
        assert_eq!(upstream_host("10.0.0.5"), "10.0.0.5");
        assert_eq!(upstream_host("::1"), "::1");
    }
}
