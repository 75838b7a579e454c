"""Checks an OpenAPI document and real responses against it.

Usage: check.py DOCUMENT SAMPLES

DOCUMENT is validated with openapi-spec-validator (OpenAPI 3.1, its JSON Schema dialect
included). SAMPLES is a JSON list of {"path", "method", "status", "body"}: each body, as
a real server sent it, is validated with jsonschema against the schema the document gives
that route's response for that status. Prints one line per failure; exits 1 if any.
"""

import json
import sys

import jsonschema
from openapi_spec_validator import validate


def pointer(*parts):
    return "#/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def response_schema(document, path, method, status):
    """The JSON pointer of the schema of `status` of `method path`, following a $ref."""
    responses = document["paths"][path][method]["responses"]
    response = responses[str(status)]
    base = ["paths", path, method, "responses", str(status)]
    if "$ref" in response:
        name = response["$ref"].rsplit("/", 1)[1]
        response = document["components"]["responses"][name]
        base = ["components", "responses", name]
    (media_type,) = response["content"].keys()
    return pointer(*base, "content", media_type, "schema")


def main():
    document = json.load(open(sys.argv[1]))
    samples = json.load(open(sys.argv[2]))
    validate(document)
    failures = 0
    for sample in samples:
        schema = dict(document)
        schema["$ref"] = response_schema(
            document, sample["path"], sample["method"], sample["status"]
        )
        validator = jsonschema.Draft202012Validator(schema)
        for error in validator.iter_errors(sample["body"]):
            failures += 1
            print(
                f'{sample["method"].upper()} {sample["path"]} {sample["status"]}: '
                f'{error.message} at {list(error.absolute_path)}'
            )
    print(f"checked the document and {len(samples)} responses")
    sys.exit(1 if failures else 0)


main()
