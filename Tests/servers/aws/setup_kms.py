#!/usr/bin/env python3
"""Creates what the aws-kms backend tests need on a fresh moto server, with boto3, then switches moto's request
authentication ON (signature checking + IAM policies) through POST /moto-api/reset-auth.

    python3 Tests/servers/aws/setup_kms.py http://127.0.0.1:PORT

Prints one JSON object on stdout:
  key_id, key_arn, alias            the key the backend wraps with (created with the default credentials)
  key2_id, key2_arn                 a second key (rotation tests)
  user_access_key, user_secret_key  IAM user tg-kms: inline policy kms:Encrypt, Decrypt, TagResource,
                                    ListResourceTags, DescribeKey (the documented least privilege)
  encrypt_only_access_key, encrypt_only_secret_key   IAM user allowed kms:Encrypt only
  sessions: [ {access_key, secret_key, session_token}, x2 ]   STS AssumeRole sessions of role tg-kms-role
                                                               (same permissions), for instance-metadata tests
  account, region
Secrets go to stdout only (the calling test), never to a file.
"""
import json
import sys
import urllib.request

import boto3

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


def main() -> int:
    endpoint = sys.argv[1].rstrip("/")
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    kms = session.client("kms", endpoint_url=endpoint)
    iam = session.client("iam", endpoint_url=endpoint)
    sts = session.client("sts", endpoint_url=endpoint)

    key = kms.create_key(Description="tensorguard aws-kms test KEK", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    key2 = kms.create_key(Description="tensorguard aws-kms test KEK 2", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    kms.create_alias(AliasName="alias/tg-test", TargetKeyId=key["KeyId"])

    # moto evaluates KMS actions against resource "*", so the statement names both the key ARNs and "*"
    # would be needed for a Resource-restricted policy; production policies name the key ARN only (docs).
    both = {
        "Version": "2012-10-17",
        # The token's anchor lives in the key's tags (docs/backends/aws-kms.md); DescribeKey resolves an alias.
        "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:TagResource",
                                                      "kms:ListResourceTags", "kms:DescribeKey"], "Resource": "*"}],
    }
    encrypt_only = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt"], "Resource": "*"}],
    }

    iam.create_user(UserName="tg-kms")
    iam.put_user_policy(UserName="tg-kms", PolicyName="tg-kms-wrap", PolicyDocument=json.dumps(both))
    user_key = iam.create_access_key(UserName="tg-kms")["AccessKey"]

    iam.create_user(UserName="tg-kms-encrypt-only")
    iam.put_user_policy(UserName="tg-kms-encrypt-only", PolicyName="tg-kms-encrypt",
                        PolicyDocument=json.dumps(encrypt_only))
    enc_key = iam.create_access_key(UserName="tg-kms-encrypt-only")["AccessKey"]

    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                       "Action": "sts:AssumeRole"}],
    }
    role = iam.create_role(RoleName="tg-kms-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(RoleName="tg-kms-role", PolicyName="tg-kms-wrap", PolicyDocument=json.dumps(both))
    sessions = []
    for n in range(2):
        c = sts.assume_role(RoleArn=role["Arn"], RoleSessionName=f"tg-instance-{n}")["Credentials"]
        sessions.append({"access_key": c["AccessKeyId"], "secret_key": c["SecretAccessKey"],
                         "session_token": c["SessionToken"]})

    # Authentication on from the next request: every request must be signed by a known key and be allowed by
    # that principal's policies.
    req = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                 headers={"Content-Type": "text/plain"})  # not form-encoded: moto reads the raw body
    with urllib.request.urlopen(req, timeout=10) as r:
        if r.status != 200:
            raise SystemExit(f"reset-auth answered {r.status}")

    json.dump({
        "key_id": key["KeyId"], "key_arn": key["Arn"], "alias": "alias/tg-test",
        "key2_id": key2["KeyId"], "key2_arn": key2["Arn"],
        "user_access_key": user_key["AccessKeyId"], "user_secret_key": user_key["SecretAccessKey"],
        "encrypt_only_access_key": enc_key["AccessKeyId"], "encrypt_only_secret_key": enc_key["SecretAccessKey"],
        "sessions": sessions, "account": ACCOUNT, "region": REGION,
    }, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
