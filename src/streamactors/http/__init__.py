"""HTTP to the providers: the upstream client the provider actor sends through (`client`) and
the transport for long streaming responses under it (`fast`)."""
