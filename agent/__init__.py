"""The site side: containers run by runc, checkpointed and restored by CRIU, their network
namespaces, image transfer, lazy pages, and the agent that serves it all to the orchestration."""
