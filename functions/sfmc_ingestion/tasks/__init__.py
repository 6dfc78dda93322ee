"""One module per Step Functions task: plan, page, commit, summary."""
