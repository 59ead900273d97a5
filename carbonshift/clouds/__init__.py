"""What the cloud adapters share: making SDK clients, naming regions, the IAM actions called."""
