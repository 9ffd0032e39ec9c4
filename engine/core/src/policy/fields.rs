//! The field catalogue: every path a rule can name, its type, and how it is read from
//! an [`Event`](gatehouse_events::Event) (see `context.rs`).

use gatehouse_dsl::{FieldId, FieldInfo, FieldType, Schema};

macro_rules! catalogue {
    ($( $konst:ident = ($path:literal, $ty:expr, $envelope:literal, $doc:literal); )*) => {
        /// Field ids, one constant per path.
        #[allow(missing_docs, reason = "each constant is documented by its row in FIELDS")]
        pub mod id {
            catalogue!(@ids 0u16; $($konst)*);
        }

        /// Every field: path, type, envelope flag, description.
        pub const FIELDS: &[(&str, FieldType, bool, &str)] = &[
            $( ($path, $ty, $envelope, $doc), )*
        ];
    };
    (@ids $n:expr; $first:ident $($rest:ident)*) => {
        pub const $first: u16 = $n;
        catalogue!(@ids $n + 1u16; $($rest)*);
    };
    (@ids $n:expr;) => {};
}

/// Values of `protocol`.
pub const PROTOCOLS: &[&str] = &["postgres", "ssh", "kubernetes"];
/// Values of `event.type`.
pub const EVENT_TYPES: &[&str] = gatehouse_events::Payload::TYPE_NAMES;
/// Values of `pg.statement.kind`.
pub const PG_KINDS: &[&str] = gatehouse_events::payload::PgKind::NAMES;
/// Values of `pg.statement.phase`.
pub const PG_PHASES: &[&str] = &["simple", "parse", "execute", "function_call", "startup"];
/// Values of `ssh.kind`.
pub const SSH_KINDS: &[&str] = gatehouse_events::payload::SshRequestKind::NAMES;
/// Values of `k8s.verb`.
pub const K8S_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "exec",
    "attach",
    "portforward",
    "proxy",
];
/// Values of `result.status`.
pub const RESULT_STATUSES: &[&str] = &["ok", "error", "refused"];

use FieldType::{Bool, Int, Ip, Str, StrList, Time};

catalogue! {
    IDENTITY = ("identity", Str, true, "identity name the credential names, in canonical form (`agent:deploy-bot`; see identity names)");
    ON_BEHALF_OF = ("identity.on_behalf_of", Str, true, "person the agent acts for, in canonical form");
    ROLE = ("identity.role", Str, true, "role a federated token mapped to");
    CREDENTIAL = ("identity.credential", Str, true, "credential (token) id; on credential events, the credential concerned");
    TARGET = ("target", Str, true, "configured target name (`prod-db`)");
    PROTOCOL = ("protocol", FieldType::Enum(PROTOCOLS), true, "`postgres`, `ssh` or `kubernetes`");
    SESSION = ("session", Str, true, "client session id");
    TIME = ("time", Time, true, "event time (UTC); `.hour`, `.minute`, `.weekday`, `.of_day`, `.date`");
    CLIENT_IP = ("client.ip", Ip, true, "client address, from the session (when the engine knows it)");
    EVENT_TYPE = ("event.type", FieldType::Enum(EVENT_TYPES), true, "event type (`request_observed`, `session_closed`, ...)");
    SESSION_CLOSE_REASON = ("session.close_reason", Str, false, "why a session closed (`session_closed` events)");
    RESULT_STATUS = ("result.status", FieldType::Enum(RESULT_STATUSES), false, "how a request ended (`result_observed` events)");
    PG_KIND = ("pg.statement.kind", FieldType::Enum(PG_KINDS), false, "statement kind");
    PG_TEXT = ("pg.statement.text", Str, false, "the SQL text as sent (truncated when long)");
    PG_TABLES = ("pg.statement.tables", StrList, false, "tables read or written, lowercased, schema-qualified as written");
    PG_TABLES_READ = ("pg.statement.tables_read", StrList, false, "tables read");
    PG_TABLES_WRITTEN = ("pg.statement.tables_written", StrList, false, "tables written");
    PG_COLUMNS = ("pg.statement.columns", StrList, false, "columns referenced");
    PG_FUNCTIONS = ("pg.statement.functions", StrList, false, "functions called, lowercased");
    PG_DANGEROUS = ("pg.statement.dangerous", StrList, false, "dangerous capabilities (`copy_program`, `dblink`, `pg_read_file`, ...)");
    PG_HAS_WHERE = ("pg.statement.has_where", Bool, false, "UPDATE/DELETE: whether a WHERE clause is present (missing otherwise)");
    PG_INDEX = ("pg.statement.index", Int, false, "position of the statement in its query string (0-based)");
    PG_COUNT = ("pg.statement.count", Int, false, "number of statements in the query string");
    PG_DDL_TARGET = ("pg.statement.ddl_target", Str, false, "object created, altered or dropped");
    PG_PRIVILEGE_CHANGE = ("pg.statement.privilege_change", Str, false, "`grant`, `revoke`, `create_role`, `alter_role`, `set_role`, ...");
    PG_TRANSACTION_CONTROL = ("pg.statement.transaction_control", Str, false, "`begin`, `commit`, `rollback`, `savepoint`, ...");
    PG_PHASE = ("pg.statement.phase", FieldType::Enum(PG_PHASES), false, "wire phase: `simple` (a query string), `parse` (a prepared statement), `execute` (its execution), `function_call` (the function-call protocol: large objects, `PQfn`) or `startup` (a setting of the startup packet, as `options=-c name=value`)");
    PG_PARSE_ERROR = ("pg.statement.parse_error", Str, false, "why the statement could not be parsed (missing when it was)");
    PG_UNRESOLVED = ("pg.statement.unresolved", Str, false, "why what the statement reaches could not be resolved (catalog unreadable, unknown function body, dynamic name, ...); missing when it was");
    PG_FALLBACK = ("pg.statement.fallback", Str, false, "set when PostgreSQL's own grammar classified the statement because the full classifier could not: why. Kind, objects, calls and capabilities are known; result-column lineage is not (every result column is masked whole under any column mask); missing otherwise");
    PG_PARSED = ("pg.statement.parsed", Bool, false, "whether the statement was parsed and classified");
    SSH_KIND = ("ssh.kind", FieldType::Enum(SSH_KINDS), false, "SSH request kind");
    SSH_SESSION_OPEN = ("ssh.session.open", Bool, false, "true for the login to a target host (`ssh.kind == session_open`)");
    SSH_HOST = ("ssh.target.host", Str, false, "host the SSH session is connected to, as configured");
    SSH_HOSTS = ("ssh.target.hosts", StrList, false, "the target host's keys, resolved when the session opened: its names (as configured, its `aliases`, hosts-file names), short-name markers (`db-1.*` for `db-1.internal`) and addresses. `ssh.target.hosts intersects capture` compares hosts as hosts (see docs/rules.md)");
    SSH_COMMAND = ("ssh.command", Str, false, "the command line as sent");
    SSH_ARGV = ("ssh.argv", StrList, false, "the command split by shell rules (first simple command)");
    SSH_PROGRAM = ("ssh.program", Str, false, "program run (basename of `argv[0]`)");
    SSH_PROGRAMS = ("ssh.programs", StrList, false, "every program the command line runs (pipelines, `sh -c`, nested pivots)");
    SSH_COMMANDS = ("ssh.commands", StrList, false, "every simple command the line runs, evaluated (quotes removed, variables of the line followed), one entry each");
    SSH_DYNAMIC = ("ssh.dynamic", Str, false, "why what the line runs cannot be known before it runs (expansion in a command name, `eval` of dynamic text, alias, unknown wrapper option, ...); missing when it can");
    SSH_INLINE_CODE = ("ssh.inline_code", StrList, false, "languages of code given inline to an interpreter (`python`, `perl`, `ruby`, `javascript`, `php`, `awk`, `sed`, ...)");
    SSH_FED_CODE = ("ssh.fed_code", Str, false, "where a shell or interpreter reads code from as data (a pipe, a file, the channel's input); missing when none does");
    SSH_SCRIPTS = ("ssh.scripts", StrList, false, "script files a shell or interpreter runs (`bash x.sh`, `python3 x.py`, `source f`)");
    SSH_REDIRECTS = ("ssh.redirects", StrList, false, "every redirection target (`< f`, `> f`, `/dev/tcp/...`)");
    SSH_WRITES = ("ssh.writes", StrList, false, "files the line writes: redirections, `tee`, `dd of=`, `cp`/`mv`/`install`/`ln` destinations; relative paths resolved against the line's `cd`s, `~` for the login directory");
    SSH_URLS = ("ssh.urls", StrList, false, "URLs among the command line's arguments (`scheme://...`, also `--option=URL`): network access by any program (`git clone`, `pip --index-url`, ...)");
    SSH_PIVOT = ("ssh.pivot", StrList, false, "protocols the command line's clients speak to other systems from the host: `postgres`, `mysql`, `mongodb`, `redis`, `kubernetes` (also an HTTP client given a Kubernetes API URL), `ssh`; empty when none");
    SSH_TRANSFER = ("ssh.transfer", Str, false, "`scp` or `rsync` when the line is only the server side of a file transfer (`scp -t`/`-f`, `rsync --server`); missing otherwise");
    SSH_RUNS_WRITTEN = ("ssh.runs_written", Str, false, "the line runs a program or script (by name) that a request of the same connection wrote: SFTP, scp, rsync, a redirection or copy; missing when it does not");
    SSH_PARSE_ERROR = ("ssh.parse_error", Str, false, "why the command line could not be parsed, or that it is over the size limit; missing when it was parsed");
    SSH_PTY = ("ssh.pty", Bool, false, "whether the channel has a PTY");
    SSH_FORWARD_HOST = ("ssh.forward.host", Str, false, "port-forward destination host");
    SSH_FORWARD_PORT = ("ssh.forward.port", Int, false, "port-forward destination port");
    SSH_SFTP_OP = ("ssh.sftp.op", Str, false, "SFTP operation (`open`, `write`, `remove`, `rename`, ...)");
    SSH_SFTP_PATH = ("ssh.sftp.path", Str, false, "SFTP path");
    SSH_SFTP_PATH2 = ("ssh.sftp.path2", Str, false, "second SFTP path (rename target)");
    SSH_PROCESS_PID = ("ssh.process.pid", Int, false, "guarded host: process id of the process that execs or connects (`ssh.kind` `process` or `connect`)");
    SSH_PROCESS_EXE = ("ssh.process.exe", Str, false, "guarded host: the real program file an exec will run (symlinks, `..` and the caller's directory resolved), or the program that connects");
    SSH_PROCESS_CWD = ("ssh.process.cwd", Str, false, "guarded host: working directory of the exec");
    SSH_PROCESS_PARENTS = ("ssh.process.parents", StrList, false, "guarded host: programs of the parent chain up to the session, nearest first");
    SSH_PROCESS_INTERPRETER = ("ssh.process.interpreter", Str, false, "guarded host: the interpreter the kernel runs for a `#!` script; missing for binaries");
    SSH_PROCESS_ANONYMOUS = ("ssh.process.anonymous", Bool, false, "guarded host: the exec runs a program that is not a file on disk (a memfd or a deleted file)");
    SSH_PROCESS_KILLED = ("ssh.process.killed", Str, false, "guarded host: set on the notice of a process killed at its exec because the kernel loaded another image or argv than the one judged: what it loaded");
    SSH_PROCESS_TASKS = ("ssh.process.tasks", Int, false, "guarded host: live processes and threads of the session, the new one included (`ssh.kind` `spawn`: asked each time the session grows past another 16); a refused count becomes the session's ceiling, so `block` here bounds fork bombs");
    SSH_CONNECT_ADDRESS = ("ssh.connect.address", Str, false, "guarded host: destination address of a connect (an IPv4-mapped IPv6 address as IPv4)");
    SSH_CONNECT_PORT = ("ssh.connect.port", Int, false, "guarded host: destination port of a connect");
    K8S_VERB = ("k8s.verb", FieldType::Enum(K8S_VERBS), false, "Kubernetes verb");
    K8S_METHOD = ("k8s.method", Str, false, "HTTP method");
    K8S_PATH = ("k8s.path", Str, false, "request path");
    K8S_API_GROUP = ("k8s.api_group", Str, false, "API group (empty for the core group)");
    K8S_API_VERSION = ("k8s.api_version", Str, false, "API version");
    K8S_RESOURCE = ("k8s.resource", Str, false, "resource (`pods`, `rolebindings`, ...)");
    K8S_NAMESPACE = ("k8s.namespace", Str, false, "namespace");
    K8S_NAME = ("k8s.name", Str, false, "object name");
    K8S_SUBRESOURCE = ("k8s.subresource", Str, false, "subresource (`exec`, `log`, `token`, ...)");
    K8S_LABEL_SELECTOR = ("k8s.label_selector", Str, false, "label selector");
    K8S_POD_KIND = ("k8s.pod.kind", Str, false, "kind of the object the pod spec came from (`Pod`, `Deployment`, ...)");
    K8S_POD_IMAGES = ("k8s.pod.images", StrList, false, "container images");
    K8S_POD_COMMANDS = ("k8s.pod.commands", StrList, false, "container commands with arguments, one per container");
    K8S_POD_PRIVILEGED = ("k8s.pod.privileged", Bool, false, "whether any container is privileged");
    K8S_POD_HOST_PATHS = ("k8s.pod.host_paths", StrList, false, "hostPath volume paths");
    K8S_POD_HOST_NETWORK = ("k8s.pod.host_network", Bool, false, "`hostNetwork`");
    K8S_POD_HOST_PID = ("k8s.pod.host_pid", Bool, false, "`hostPID`");
    K8S_POD_HOST_IPC = ("k8s.pod.host_ipc", Bool, false, "`hostIPC`");
    K8S_POD_CAPABILITIES = ("k8s.pod.capabilities", StrList, false, "added Linux capabilities");
    K8S_POD_SERVICE_ACCOUNT = ("k8s.pod.service_account", Str, false, "service account name");
    K8S_POD_SECRETS = ("k8s.pod.secrets", StrList, false, "secrets mounted or referenced");
    K8S_POD_PROJECTED_TOKENS = ("k8s.pod.projected_tokens", StrList, false, "projected service-account token volumes, by audience (`default` when none is named)");
}

/// Result-side capture sources (`pg.result.column("hostname")`).
pub const RESULT_SOURCES: &[&str] = &["pg.result.column"];

/// Event kinds usable in inline tests.
pub const TEST_EVENT_KINDS: &[&str] = &[
    "pg",
    "ssh",
    "k8s",
    "result",
    "session_opened",
    "session_closed",
    "credential_revoked",
    "approval_granted",
    "approval_denied",
];

/// The [`Schema`] of Gatehouse events.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventSchema;

impl Schema for EventSchema {
    fn lookup(&self, path: &str) -> Option<FieldInfo> {
        let i = FIELDS.iter().position(|(p, ..)| *p == path)?;
        let (_, ty, envelope, _) = FIELDS.get(i)?;
        Some(FieldInfo {
            id: FieldId(u16::try_from(i).ok()?),
            ty: *ty,
            envelope: *envelope,
        })
    }

    fn paths(&self) -> Vec<&str> {
        FIELDS.iter().map(|(p, ..)| *p).collect()
    }

    fn result_sources(&self) -> Vec<&str> {
        RESULT_SOURCES.to_vec()
    }

    fn test_event_kinds(&self) -> Vec<&str> {
        TEST_EVENT_KINDS.to_vec()
    }

    fn canonical(&self, field: FieldId, value: &str) -> Option<String> {
        matches!(field.0, id::IDENTITY | id::ON_BEHALF_OF | id::ROLE)
            .then(|| crate::identity::normalize(value).into_owned())
    }
}
