"""Seed 000's loan application stream: topic ``loanApplications`` → ``bronze/loan_applications`` →
``silver/loan_applications``, one ``Loan_Application_Stream_Job`` run per micro-batch."""
