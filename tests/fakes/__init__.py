"""Small local fakes of cloud APIs that have no emulator, reached through the real SDKs."""
