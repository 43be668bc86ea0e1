"""The only code that writes to Kubernetes.

scale: the /scale subresource of any workload; deletion_cost: pod-deletion-cost
annotations for drain-aware scale-in; events: core/v1 Events; resources: our
custom resources' reads and status patches; scalers: the BacklogScaler status;
status: pure builders of that status and its conditions; secrets: the DSN Secret
(read only); client: the ApiClient. Called by scaler/ and scaletest/.
"""
