"""Training on Amazon SageMaker: the launcher (``stop-slu sagemaker``) and the job's entry point."""
