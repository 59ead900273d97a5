"""The IAM actions behind each AWS operation carbonshift calls.

deployments/aws-iam-policy.json grants these and nothing else; the test suite records every
operation carbonshift's clients call and fails when one is missing here or in the policy. Most
operations are their own action, but not all (S3's multipart upload is s3:PutObject, a
RunInstances with tags also needs ec2:CreateTags).
"""

from __future__ import annotations

ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    # EC2 compute (carbonshift/compute/ec2.py)
    ("ec2", "RunInstances"): ("ec2:RunInstances", "ec2:CreateTags"),
    ("ec2", "TerminateInstances"): ("ec2:TerminateInstances",),
    ("ec2", "DescribeInstances"): ("ec2:DescribeInstances",),
    ("ec2", "DescribeImages"): ("ec2:DescribeImages",),
    ("ec2", "DescribeSpotInstanceRequests"): ("ec2:DescribeSpotInstanceRequests",),
    ("ec2", "DescribeSpotPriceHistory"): ("ec2:DescribeSpotPriceHistory",),
    ("ssm", "GetParameter"): ("ssm:GetParameter",),
    # S3 checkpoint store
    ("s3", "PutObject"): ("s3:PutObject",),
    ("s3", "CreateMultipartUpload"): ("s3:PutObject",),
    ("s3", "UploadPart"): ("s3:PutObject",),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject",),
    ("s3", "AbortMultipartUpload"): ("s3:AbortMultipartUpload",),
    ("s3", "ListParts"): ("s3:ListMultipartUploadParts",),
    ("s3", "ListMultipartUploads"): ("s3:ListBucketMultipartUploads",),
    ("s3", "GetObject"): ("s3:GetObject",),
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "CopyObject"): ("s3:GetObject", "s3:PutObject"),
    ("s3", "DeleteObject"): ("s3:DeleteObject",),
    ("s3", "DeleteObjects"): ("s3:DeleteObject",),
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "ListObjects"): ("s3:ListBucket",),
    ("s3", "HeadBucket"): ("s3:ListBucket",),
}


def actions(service: str, operation: str) -> tuple[str, ...]:
    """The IAM actions of one operation; `service` is the client's signing name (ec2, s3, ssm).
    An operation missing from the table maps to `service:Operation`, which is right for most."""
    return ACTIONS.get((service, operation), (f"{service}:{operation}",))


def action(service: str, operation: str) -> str:
    """The main IAM action of an operation, the one an AccessDenied names."""
    return actions(service, operation)[0]
