"""The model side: an OpenAI-compatible Qwen client and what it speaks.

client      the transport: requests as the profile puts them on the wire, streaming, retries, timeouts
profiles    per-server wire rules (thinking switch, sampling fields)
events      the records a streamed answer yields (text, reasoning, usage, finish reason)
reasoning   the `<think>` filter that keeps reasoning out of the answer
errors      the exception tree (LLMError)
diagnosis   the one place a failed call becomes an LLMError's one line

Import names from the module that defines them; this package re-exports nothing, so the light records
(events, errors) load without the client and its HTTP stack.
"""
