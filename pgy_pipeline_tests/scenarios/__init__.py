"""End-to-end stories across parts: failures and healing, hostile answers, security, the CLI from a shell."""
