"""The ``kubernetes`` metadata-store flavor: MySQL deployed as a Kubernetes workload.

Importing this package does not import the ``kubernetes`` client (an optional extra,
``pip install 'pipeledger[kubernetes]'``); it is imported when the store is deployed,
removed or opened.
"""

from pipeledger.metadata_store.flavors.kubernetes.config import KubernetesMetadataStoreConfig
from pipeledger.metadata_store.flavors.kubernetes.flavor import KubernetesMetadataStoreFlavor

__all__ = ["KubernetesMetadataStoreConfig", "KubernetesMetadataStoreFlavor"]
