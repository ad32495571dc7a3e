"""Test setup against a moto server: buckets, IAM users, Secrets Manager secrets.

usage: moto_setup.py ENDPOINT bucket NAME [lock|versioned]
       moto_setup.py ENDPOINT users BUCKET [ROLE...] -> {"writer": {...}, "reader": {...}, ROLE: {...}}
       moto_setup.py ENDPOINT secret REGION NAME    (the value is read from stdin)
       moto_setup.py ENDPOINT rotate USER ADMIN_ACCESS_KEY_ID ADMIN_SECRET -> {"access_key_id": ..., ...}
                                                    (a new access key for USER, then its old
                                                     ones deleted, as the `admin` role)
       moto_setup.py ENDPOINT put BUCKET KEY [ACCESS_KEY_ID SECRET]
                                                    (a plain PutObject of stdin, as any
                                                     writer can send it: no If-None-Match;
                                                     with those credentials, else the setup's)

Each user the `users` step makes takes exactly 3 requests: with writer and reader alone, 6, so
a server started with INITIAL_NO_AUTH_ACTION_COUNT=7 (bucket + users) enforces IAM policies from
then on; each extra ROLE (pruner, lister) adds 3. A `versioned` bucket takes 2 requests.
"""
import json
import sys

import boto3
import urllib3

urllib3.disable_warnings()

endpoint, action, *args = sys.argv[1:]
session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")


def client(service, region="us-east-1"):
    # verify=False: the TLS tests' moto uses a self-signed certificate.
    return session.client(service, endpoint_url=endpoint, region_name=region, verify=False)


if action == "bucket":
    name = args[0]
    kwargs = {"Bucket": name}
    if len(args) > 1 and args[1] == "lock":
        kwargs["ObjectLockEnabledForBucket"] = True
    client("s3").create_bucket(**kwargs)
    if len(args) > 1 and args[1] == "versioned":
        client("s3").put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    print("{}")
elif action == "users":
    bucket, *extra = args
    iam = client("iam")
    out = {}
    policies = {
        # Exactly what a backup needs: create objects, nothing else.
        "writer": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]},
        # What listing, verifying and restoring need (the versions: to read a locked version
        # that someone wrote over).
        "reader": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketObjectLockConfiguration"], "Resource": f"arn:aws:s3:::{bucket}"},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion"], "Resource": f"arn:aws:s3:::{bucket}/*"},
        ]},
        # What prune needs besides reading: each version's retention, and deleting by version.
        "pruner": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketObjectLockConfiguration"], "Resource": f"arn:aws:s3:::{bucket}"},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention", "s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": f"arn:aws:s3:::{bucket}/*"},
        ]},
        # A reader without version rights: lists and reads what is current, nothing older.
        "lister": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketObjectLockConfiguration"], "Resource": f"arn:aws:s3:::{bucket}"},
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"arn:aws:s3:::{bucket}/*"},
        ]},
        # Who rotates the others' access keys once IAM is enforced.
        "admin": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]},
    }
    wanted = ["writer", "reader", *extra]
    for user, policy in ((u, policies[u]) for u in wanted):
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName=f"{user}-only", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        out[user] = {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    print(json.dumps(out))
elif action == "secret":
    region, name = args
    value = sys.stdin.read()
    client("secretsmanager", region).create_secret(Name=name, SecretString=value)
    print("{}")
elif action == "rotate":
    user, admin_id, admin_secret = args
    admin = boto3.session.Session(aws_access_key_id=admin_id, aws_secret_access_key=admin_secret, region_name="us-east-1")
    iam = admin.client("iam", endpoint_url=endpoint, verify=False)
    old = [k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]
    key = iam.create_access_key(UserName=user)["AccessKey"]
    for key_id in old:
        iam.delete_access_key(UserName=user, AccessKeyId=key_id)
    print(json.dumps({"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"], "deleted": old}))
elif action == "put":
    bucket, key, *creds = args
    s3 = client("s3")
    if creds:
        s3 = boto3.session.Session(aws_access_key_id=creds[0], aws_secret_access_key=creds[1], region_name="us-east-1").client("s3", endpoint_url=endpoint, verify=False)
    s3.put_object(Bucket=bucket, Key=key, Body=sys.stdin.buffer.read())
    print("{}")
else:
    sys.exit(f"unknown action {action}")
