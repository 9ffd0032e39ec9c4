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
}
