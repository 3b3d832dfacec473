"""What the control plane and the chat service share: settings, identity, auth, logs, errors."""
