"""HubSpot's answers as typed models, parsed at the adapter's edge (hubspot-api.md §1.2, §1.7-§1.9, §2.2).

Every answer the product reads is validated here before anything else looks at it: a body of the wrong shape
(`[]`, `{"results": null}`, `"errors": ["boom"]`, a trace id list that is a string) raises
`pydantic.ValidationError`, which the client turns into `HubSpotMalformedAnswer`, a transient fault naming no
contact. Fields the product does not read are kept (`extra="allow"`) but not checked; fields it reads are
typed strictly enough that a string is never read as a list (`objectWriteTraceId: "0"`).
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from hubspot_destination.limits import HUBSPOT_SEARCH_PAGE_MAX

_Answer = ConfigDict(extra="allow", frozen=True)
# Internal names are at most 100 characters (hubspot-api.md §2.3); a longer one is not a HubSpot answer.
Name = Annotated[StrictStr, Field(min_length=1, max_length=100)]


class Option(BaseModel):
    """One option of an enumeration property: `{label, value, displayOrder, hidden}`."""

    model_config = _Answer

    label: StrictStr = ""
    value: StrictStr
    displayOrder: int | None = None
    hidden: StrictBool = False


class ModificationMetadata(BaseModel):
    model_config = _Answer

    readOnlyValue: StrictBool = False


class Property(BaseModel):
    """A contact property as `GET /crm/v3/properties/contacts` lists it (hubspot-api.md §2.2)."""

    model_config = _Answer

    name: Name
    label: StrictStr = ""
    type: StrictStr
    fieldType: StrictStr = ""
    groupName: StrictStr = ""
    options: list[Option] = Field(default_factory=list)
    calculated: StrictBool = False
    hidden: StrictBool = False
    modificationMetadata: ModificationMetadata = Field(default_factory=ModificationMetadata)

    @property
    def read_only(self) -> bool:
        """Writing it gives `READ_ONLY_VALUE` (hubspot-api.md §1.7): calculated or `readOnlyValue`."""
        return self.calculated or self.modificationMetadata.readOnlyValue


class PropertyList(BaseModel):
    model_config = _Answer

    results: list[Property]


class PropertyGroup(BaseModel):
    model_config = _Answer

    name: Name
    label: StrictStr = ""


class PropertyGroupList(BaseModel):
    model_config = _Answer

    results: list[PropertyGroup]


class ErrorContext(BaseModel):
    """`context` of an error: string arrays keyed by name (hubspot-api.md §1.8)."""

    model_config = _Answer

    objectWriteTraceId: list[StrictStr] = Field(default_factory=list)
    propertyName: list[StrictStr] = Field(default_factory=list)


class ErrorDetail(BaseModel):
    """An item of `errors[]`: `{message, code?, context?}`."""

    model_config = _Answer

    message: StrictStr = ""
    code: StrictStr | None = None
    context: ErrorContext = Field(default_factory=ErrorContext)


class ErrorEnvelope(BaseModel):
    """HubSpot's JSON error envelope, a top-level error or an item of a 207's `errors[]`.

    Every field is optional (HubSpot's own guidance, hubspot-api.md §1.8); `policyName` and `errorType` come
    with 429s (§3.3).
    """

    model_config = _Answer

    status: StrictStr | None = None
    category: StrictStr | None = None
    errorType: StrictStr | None = None
    message: StrictStr = ""
    correlationId: StrictStr | None = None
    policyName: StrictStr | None = None
    context: ErrorContext = Field(default_factory=ErrorContext)
    errors: list[ErrorDetail] = Field(default_factory=list)


class UpsertResult(BaseModel):
    """An item of `results[]` of `batch/upsert`: the contact written (hubspot-api.md §1.2)."""

    model_config = _Answer

    id: StrictStr = Field(min_length=1)
    objectWriteTraceId: StrictStr | None = None
    properties: dict[str, StrictStr | None] = Field(default_factory=dict)


class BatchUpsertAnswer(BaseModel):
    """The 200 or 207 answer of `batch/upsert`; results are not in input order (hubspot-api.md §1.2, §1.4).
    `results` is required by HubSpot's spec (`BatchResponseSimplePublicUpsertObject`), even when empty."""

    model_config = _Answer

    results: list[UpsertResult]
    errors: list[ErrorEnvelope] = Field(default_factory=list)


class ContactRecord(BaseModel):
    """An item of `results[]` of `batch/read`."""

    model_config = _Answer

    id: StrictStr = Field(min_length=1)
    properties: dict[str, StrictStr | None] = Field(default_factory=dict)


class BatchReadAnswer(BaseModel):
    model_config = _Answer

    results: list[ContactRecord] = Field(default_factory=list)


# Far above any portal's contact count; a larger `total` is not an answer to trust.
_MAX_SEARCH_TOTAL = 1_000_000_000


class SearchNext(BaseModel):
    """`paging.next` of a search answer: `after`, the cursor to send for the next page."""

    model_config = _Answer

    after: StrictStr = Field(min_length=1, max_length=1000)


class SearchPaging(BaseModel):
    model_config = _Answer

    next: SearchNext | None = None


class SearchAnswer(BaseModel):
    """The 200 answer of `POST /crm/v3/objects/contacts/search` (hubspot-api.md §1.9): `total`, the number of
    contacts matching (all pages), one page of `results` (at most 200), and `paging.next.after` only while more
    results remain. `total` below the page's length, or a next page announced after an empty one, is not a
    HubSpot answer."""

    model_config = _Answer

    total: StrictInt = Field(ge=0, le=_MAX_SEARCH_TOTAL)
    results: list[ContactRecord] = Field(max_length=HUBSPOT_SEARCH_PAGE_MAX)
    paging: SearchPaging | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "SearchAnswer":
        if len(self.results) > self.total:
            raise ValueError(f"{len(self.results)} results but a total of {self.total}")
        if self.next_after is not None and not self.results:
            raise ValueError("a next page after an empty one")
        return self

    @property
    def next_after(self) -> str | None:
        """The cursor of the next page; None on the last page."""
        return self.paging.next.after if self.paging is not None and self.paging.next is not None else None
