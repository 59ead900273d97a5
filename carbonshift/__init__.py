"""carbonshift: plan ML training for the cleanest hours and regions."""
