"""Deploying a MySQL for the ``kubernetes`` metadata store on a Kubernetes cluster.

- :mod:`.config`: the flavor's configuration and the names of the deployment's objects;
- :mod:`.manifests`: the objects, rendered as client models (pure);
- :mod:`.cluster`: reaching the API server and translating its failures;
- :mod:`.deploy`: applying, waiting for and removing the objects, and reading the passwords;
- :mod:`.port_forward`: a local port relayed to the MySQL pod;

The store itself is opened by :mod:`pipeledger.metadata_store.flavors.kubernetes`. Importing
this package (or :mod:`.config`) does not import the ``kubernetes`` client, an optional extra
(``pip install 'pipeledger[kubernetes]'``).
"""
