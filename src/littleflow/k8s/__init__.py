"""Kubernetes Jobs as tasks: ``k8s:`` tasks run as Jobs (``littleflow worker --kubernetes``).
:mod:`.jobs` builds the manifests and reads the outcomes; :mod:`.executor` creates and follows them."""
