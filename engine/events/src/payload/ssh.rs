use serde::{Deserialize, Serialize};

/// What kind of SSH request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SshRequestKind {
    /// The session opened (login to a target host).
    #[default]
    SessionOpen,
    /// An `exec` channel request.
    Exec,
    /// A line entered in an interactive shell.
    ShellLine,
    /// A `shell` channel request (start of an interactive shell).
    Shell,
    /// A `direct-tcpip` port forward.
    PortForward,
    /// An SFTP file operation.
    Sftp,
    /// Another subsystem request.
    Subsystem,
    /// An environment variable request.
    Env,
    /// Agent or X11 forwarding request.
    Forwarding,
    /// A process of a guarded session is about to exec a program (`gatehouse-guard`).
    Process,
    /// A process of a guarded session is about to connect out (`gatehouse-guard`).
    Connect,
    /// A guarded session grew past another step of live processes and threads
    /// (`gatehouse-guard`): may it grow further?
    Spawn,
}

impl SshRequestKind {
    /// Every kind's name (the values of `ssh.kind` in rules).
    pub const NAMES: &'static [&'static str] = &[
        "session_open",
        "exec",
        "shell_line",
        "shell",
        "port_forward",
        "sftp",
        "subsystem",
        "env",
        "forwarding",
        "process",
        "connect",
        "spawn",
    ];

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            SshRequestKind::SessionOpen => "session_open",
            SshRequestKind::Exec => "exec",
            SshRequestKind::ShellLine => "shell_line",
            SshRequestKind::Shell => "shell",
            SshRequestKind::PortForward => "port_forward",
            SshRequestKind::Sftp => "sftp",
            SshRequestKind::Subsystem => "subsystem",
            SshRequestKind::Env => "env",
            SshRequestKind::Forwarding => "forwarding",
            SshRequestKind::Process => "process",
            SshRequestKind::Connect => "connect",
            SshRequestKind::Spawn => "spawn",
        }
    }
}

/// An SSH request, parsed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SshRequest {
    /// The request kind.
    pub kind: SshRequestKind,
    /// The target host the session is connected to.
    pub host: String,
    /// Keys of the target host ([`crate::host::target_keys`]): its names (as
    /// configured, its aliases, names the resolver gave), short-name markers
    /// (`db-1.*`) and addresses, resolved when the session opened.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Channel number.
    pub channel: u32,
    /// Whether the channel has a PTY.
    pub pty: bool,
    /// The command split by shell rules (first simple command).
    pub argv: Vec<String>,
    /// The program run (basename of `argv[0]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// Every program the command line runs, including pipelines, `sh -c` and nested
    /// pivots (`ssh`, `nc`, `curl | sh`, ...).
    pub programs: Vec<String>,
    /// Every simple command the line runs, evaluated, one entry each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// Why what the line runs is not known before it runs (a command name from an
    /// expansion, `eval` of dynamic text, an alias, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<String>,
    /// Languages of code given inline to an interpreter (`python`, `perl`, `awk`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inline_code: Vec<String>,
    /// Code a shell or interpreter reads as data (from a pipe, a file, the channel's
    /// input): where from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fed_code: Option<String>,
    /// Script files a shell or interpreter runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<String>,
    /// Every redirection target of the line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<String>,
    /// Files the line writes (redirections, `tee`, `dd of=`, copy destinations).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<String>,
    /// URLs among the line's arguments (network access by any program).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Protocols the line's programs speak to other systems from the host
    /// (`postgres`, `mysql`, `mongodb`, `redis`, `kubernetes`, `ssh`): a pivot past the
    /// gateway.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pivot: Vec<String>,
    /// The line is the server side of a file transfer (`scp` or `rsync`) and nothing
    /// else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<String>,
    /// The line runs a program or script that a request of the same connection wrote
    /// (SFTP, scp, rsync, a redirection): which.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_written: Option<String>,
    /// Why the line could not be parsed (or is over the size limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    /// Port-forward destination host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_host: Option<String>,
    /// Port-forward destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_port: Option<u16>,
    /// SFTP operation (`open`, `read`, `write`, `remove`, `rename`, `mkdir`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sftp_op: Option<String>,
    /// SFTP path (or the subsystem / env name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Second SFTP path (rename target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path2: Option<String>,
    /// The process behind a `process` or `connect` request of a guarded session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<SshProcess>,
}

/// A process on a guarded host, as `gatehouse-guard` saw it before its exec or
/// connect (ADR 0023).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SshProcess {
    /// Process id on the host.
    pub pid: u32,
    /// The real program file: for an exec, the one it will run (symlinks and `..`
    /// resolved); for a connect, the caller's running program.
    pub exe: String,
    /// Working directory (exec).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cwd: String,
    /// Programs of the parent chain up to the session's guard, nearest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// For a `#!` script, the interpreter the kernel will run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// The program is not a file on disk (a memfd or a deleted file).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// Connect: destination address (an IPv4-mapped IPv6 address as IPv4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Connect: destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Set when the guard killed the process at its exec because the image the
    /// kernel loaded was not the one judged: what it loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed: Option<String>,
    /// Spawn: the session's live processes and threads, the new one included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u32>,
}
