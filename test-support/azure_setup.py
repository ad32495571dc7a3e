"""Test setup against Azurite with Azure's own Python SDK (azure-storage-blob): containers,
shared access signatures, and writes as any writer can send them.

usage: azure_setup.py ENDPOINT container NAME
       azure_setup.py ENDPOINT sas CONTAINER PERMISSIONS      -> {"sas": "..."} (an hour)
       azure_setup.py ENDPOINT put CONTAINER BLOB             (stdin, overwriting: no condition)
       azure_setup.py ENDPOINT get CONTAINER BLOB             (to stdout)

ENDPOINT is the Blob service URL with the account, `http://127.0.0.1:PORT/devstoreaccount1`.
The account is Azurite's default (devstoreaccount1 and its published key).
"""
import datetime
import json
import sys

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

endpoint, action, *args = sys.argv[1:]
service = BlobServiceClient(account_url=endpoint, credential={"account_name": ACCOUNT, "account_key": KEY})

if action == "container":
    service.create_container(args[0])
elif action == "sas":
    container, permissions = args
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    sas = generate_container_sas(ACCOUNT, container, account_key=KEY, permission=ContainerSasPermissions.from_string(permissions), expiry=expiry)
    print(json.dumps({"sas": sas}))
elif action == "put":
    container, blob = args
    service.get_blob_client(container, blob).upload_blob(sys.stdin.buffer.read(), overwrite=True)
elif action == "get":
    container, blob = args
    sys.stdout.buffer.write(service.get_blob_client(container, blob).download_blob().readall())
else:
    sys.exit(f"unknown action {action}")
