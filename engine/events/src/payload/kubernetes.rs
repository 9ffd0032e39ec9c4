use serde::{Deserialize, Serialize};

/// A Kubernetes API request, parsed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct K8sRequest {
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Kubernetes verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or the subresource verbs `exec`, `attach`, `portforward`, `proxy`.
    pub verb: String,
    /// API group (`""` for the core group).
    pub api_group: String,
    /// API version (`v1`).
    pub api_version: String,
    /// Resource (`pods`, `deployments`, ...).
    pub resource: String,
    /// Namespace, for namespaced requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Subresource (`exec`, `log`, `status`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// Label selector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// Field selector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_selector: Option<String>,
    /// For pods and workload resources: the pod template fields that matter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodSpecSummary>,
}

/// The security-relevant fields of a pod spec (or a workload's pod template).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodSpecSummary {
    /// Kind of the object the spec came from (`Pod`, `Deployment`, `Job`, ...).
    pub kind: String,
    /// The object's `metadata.name` (`generateName` when it has no name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_name: Option<String>,
    /// Container images (init and ephemeral containers included).
    pub images: Vec<String>,
    /// Container commands with their arguments, one string per container.
    pub commands: Vec<String>,
    /// Whether any container is privileged.
    pub privileged: bool,
    /// hostPath volume paths.
    pub host_paths: Vec<String>,
    /// `hostNetwork`.
    pub host_network: bool,
    /// `hostPID`.
    pub host_pid: bool,
    /// `hostIPC`.
    pub host_ipc: bool,
    /// Added Linux capabilities.
    pub capabilities: Vec<String>,
    /// Service account name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Secrets mounted as volumes or referenced from env.
    pub secrets: Vec<String>,
    /// Projected service-account token volumes, by audience (`default` when none is
    /// named): a token the workload can present elsewhere.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub projected_tokens: Vec<String>,
}
