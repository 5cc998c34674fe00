from hubspot_local.openapi import DOCUMENT, openapi_document, render


def test_committed_openapi_document_matches_the_models():
    assert DOCUMENT.read_text(encoding="utf-8") == render(), "run `make openapi` and commit docs/openapi.json"


def test_document_describes_the_contract():
    document = openapi_document()
    post = document["paths"]["/v1/activations"]["post"]
    assert set(post["responses"]) == {"202", "400", "401", "413", "415", "422", "503"}
    schemas = document["components"]["schemas"]
    assert {"ActivationRequest", "Profile", "Membership", "ActivationAccepted", "ErrorBody"} <= set(schemas)
    assert schemas["Membership"]["properties"]["status"]["enum"] == ["realized", "existing", "exited"]


def test_document_describes_the_target_fields():
    document = openapi_document()
    get = document["paths"]["/v1/target-fields"]["get"]
    assert set(get["responses"]) == {"200", "400", "401", "503"}
    assert get["security"] == document["paths"]["/v1/activations"]["post"]["security"]
    field = document["components"]["schemas"]["TargetField"]
    assert set(field["required"]) == {"name", "label", "type", "fieldType", "group", "options"}
