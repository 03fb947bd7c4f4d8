"""What the tracer knows of tools beyond their spans: parameter schemas read from signatures and tool
definitions, and replaying recorded tool results during an eval."""
