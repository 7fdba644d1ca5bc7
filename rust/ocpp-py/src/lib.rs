//! pyo3 binding of `ocpp-core` as `ocpp_gateway._core`: type and error conversion only.

use std::collections::HashMap;
use std::sync::Arc;

use ocpp_core::schema::ActionId;
use ocpp_core::{json, Direction, DropReason, ErrorKind, OcppVersion, Relaxation};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

create_exception!(
    _core,
    SchemaError,
    PyValueError,
    "A schema file could not be read or uses a JSON Schema feature the core does not support."
);

fn version_from(name: &str) -> PyResult<OcppVersion> {
    OcppVersion::from_name(name)
        .ok_or_else(|| PyValueError::new_err(format!("unknown OCPP version {name:?}")))
}

fn direction_from(name: &str) -> PyResult<Direction> {
    Direction::from_name(name)
        .ok_or_else(|| PyValueError::new_err(format!("unknown direction {name:?}")))
}

const DROP_REASONS: [DropReason; 4] = [
    DropReason::UnknownMessageType,
    DropReason::UnmatchedResult,
    DropReason::InvalidSend,
    DropReason::InvalidCallError,
];

/// The compiled request and response schemas of one OCPP version. Immutable and shared.
#[pyclass(frozen, module = "ocpp_gateway._core", name = "SchemaSet")]
struct PySchemaSet {
    inner: Arc<ocpp_core::SchemaSet>,
    /// Interned action names, by action index.
    names: Vec<Py<PyString>>,
    /// Interned error codes of the version, by `ErrorKind::ALL` position.
    codes: Vec<Py<PyString>>,
    /// Interned drop reasons, by `DROP_REASONS` position.
    drops: Vec<Py<PyString>>,
}

impl PySchemaSet {
    fn wrap(py: Python<'_>, inner: ocpp_core::SchemaSet) -> Self {
        let v = inner.version();
        let names = v
            .actions()
            .iter()
            .map(|(n, _)| PyString::intern(py, n).unbind())
            .collect();
        let codes = ErrorKind::ALL
            .iter()
            .map(|k| PyString::intern(py, k.code(v)).unbind())
            .collect();
        let drops = DROP_REASONS
            .iter()
            .map(|d| PyString::intern(py, d.name()).unbind())
            .collect();
        PySchemaSet {
            inner: Arc::new(inner),
            names,
            codes,
            drops,
        }
    }

    fn code(&self, py: Python<'_>, kind: ErrorKind) -> Py<PyString> {
        let i = ErrorKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.codes[i].clone_ref(py)
    }

    fn drop_reason(&self, py: Python<'_>, d: DropReason) -> Py<PyString> {
        let i = DROP_REASONS.iter().position(|x| *x == d).unwrap_or(0);
        self.drops[i].clone_ref(py)
    }

    fn name(&self, py: Python<'_>, id: ActionId) -> Py<PyString> {
        self.names[id as usize].clone_ref(py)
    }
}

#[pymethods]
impl PySchemaSet {
    #[new]
    #[pyo3(signature = (version, schema_dir, extra_dirs = None))]
    fn new(
        py: Python<'_>,
        version: &str,
        schema_dir: &str,
        extra_dirs: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let v = version_from(version)?;
        let extra = extra_dirs.unwrap_or_default();
        let dir = schema_dir.to_owned();
        let inner = py
            .allow_threads(|| {
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                ocpp_core::SchemaSet::load(v, dir.as_str(), &extra)
            })
            .map_err(|e| SchemaError::new_err(e.0))?;
        Ok(Self::wrap(py, inner))
    }

    #[getter]
    fn version(&self) -> &'static str {
        self.inner.version().name()
    }

    /// Every known action with its direction: "cp_to_csms", "csms_to_cp" or "both".
    fn actions(&self) -> Vec<(&'static str, &'static str)> {
        self.inner
            .version()
            .actions()
            .iter()
            .map(|(n, d)| (*n, d.name()))
            .collect()
    }

    fn has_schema(&self, action: &str, response: bool) -> bool {
        self.inner.has_schema(action, response)
    }

    /// Validate a bare JSON payload; None when valid, else (error_code, detail).
    fn validate(
        &self,
        action: &str,
        response: bool,
        payload: &[u8],
    ) -> PyResult<Option<(&'static str, String)>> {
        let version = self.inner.version();
        let value = match json::parse(payload) {
            Ok(v) => v,
            Err(e) => {
                return Ok(Some((
                    ErrorKind::Framework.code(version),
                    format!("not JSON: {e}"),
                )))
            }
        };
        match self.inner.validate(action, response, &value) {
            None => Err(PyValueError::new_err(format!(
                "no {} schema for {action:?}",
                if response { "response" } else { "request" }
            ))),
            Some(Ok(())) => Ok(None),
            Some(Err(v)) => Ok(Some((v.kind.code(version), v.detail))),
        }
    }

    /// Check one relaxation key and its table; None when it compiles, else (reason, message).
    fn check_relaxation(
        &self,
        key: &str,
        relax: &Bound<'_, PyAny>,
    ) -> PyResult<Option<(&'static str, String)>> {
        let list = relaxations_from(key, relax)?;
        Ok(ocpp_core::ModelRules::check(&self.inner, key, &list)
            .err()
            .map(|e| (e.kind.name(), e.message)))
    }

    fn __repr__(&self) -> String {
        format!("SchemaSet({:?})", self.inner.version().name())
    }
}

/// Convert a relaxation table ({"max_length": 50, ...}) into relaxations.
fn relaxations_from(key: &str, table: &Bound<'_, PyAny>) -> PyResult<Vec<Relaxation>> {
    let items = table
        .call_method0("items")
        .map_err(|_| PyValueError::new_err(format!("{key}: expected a table of relaxations")))?;
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let (kind, value): (String, Bound<'_, PyAny>) = item?.extract()?;
        let wrong = |what: &str| PyValueError::new_err(format!("{key}.{kind}: expected {what}"));
        let r = match kind.as_str() {
            "max_length" => Relaxation::MaxLength(
                value
                    .extract()
                    .map_err(|_| wrong("a non-negative integer"))?,
            ),
            "min_items" => Relaxation::MinItems(
                value
                    .extract()
                    .map_err(|_| wrong("a non-negative integer"))?,
            ),
            "extra_enum" => {
                Relaxation::ExtraEnum(value.extract().map_err(|_| wrong("a list of strings"))?)
            }
            "extra_types" => Relaxation::ExtraTypes(
                value
                    .extract()
                    .map_err(|_| wrong("a list of JSON type names"))?,
            ),
            "allow_property" => match value.extract::<bool>() {
                Ok(true) => Relaxation::AllowProperty,
                _ => return Err(wrong("true")),
            },
            _ => {
                return Err(PyValueError::new_err(format!(
                    "{key}.{kind}: unknown relaxation (one of max_length, extra_enum, \
                     min_items, allow_property, extra_types)"
                )))
            }
        };
        out.push(r);
    }
    Ok(out)
}

/// The rules of every configured charge point model of one version. Immutable and shared.
#[pyclass(frozen, module = "ocpp_gateway._core", name = "ModelRules")]
struct PyModelRules {
    inner: Arc<ocpp_core::ModelRules>,
    schemas: Py<PySchemaSet>,
}

#[pymethods]
impl PyModelRules {
    #[new]
    fn new(schemas: Py<PySchemaSet>, models: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut inner = ocpp_core::ModelRules::new(schemas.get().inner.clone());
        for item in models.call_method0("items")?.try_iter()? {
            let item = item?;
            let model: String = item.get_item(0)?.extract()?;
            let entry = item.get_item(1)?;
            let policy: Py<PyPolicy> = entry.get_item(0)?.extract()?;
            let mut list: Vec<(String, Vec<Relaxation>)> = Vec::new();
            for pair in entry.get_item(1)?.call_method0("items")?.try_iter()? {
                let pair = pair?;
                let key: String = pair.get_item(0)?.extract()?;
                let relax = relaxations_from(&key, &pair.get_item(1)?)?;
                list.push((key, relax));
            }
            inner
                .insert(&model, policy.get().inner.clone(), &list)
                .map_err(|e| PyValueError::new_err(format!("{model}: {e}")))?;
        }
        Ok(PyModelRules {
            inner: Arc::new(inner),
            schemas,
        })
    }

    #[getter]
    fn version(&self) -> &'static str {
        self.inner.version().name()
    }

    /// The configured model names, sorted.
    fn models(&self) -> Vec<String> {
        self.inner.models().into_iter().map(str::to_owned).collect()
    }

    /// The relaxation rule names of a model (its relax keys), sorted; empty for an unknown model.
    fn rules(&self, model: &str) -> Vec<String> {
        self.inner.get(model).map_or_else(Vec::new, |m| {
            m.rule_names().into_iter().map(str::to_owned).collect()
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "ModelRules({:?}, models={:?})",
            self.inner.version().name(),
            self.inner.models()
        )
    }
}

/// How strictly payloads are validated: "enforce", "observe" or "off". Immutable.
#[pyclass(frozen, module = "ocpp_gateway._core", name = "Policy")]
struct PyPolicy {
    inner: ocpp_core::Policy,
}

#[pymethods]
impl PyPolicy {
    #[new]
    #[pyo3(signature = (default = "enforce", overrides = None))]
    fn new(default: &str, overrides: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(o) = overrides {
            for item in o.call_method0("items")?.try_iter()? {
                pairs.push(item?.extract()?);
            }
        }
        let inner = ocpp_core::Policy::from_names(
            default,
            pairs.iter().map(|(k, m)| (k.as_str(), m.as_str())),
        )
        .map_err(PyValueError::new_err)?;
        Ok(PyPolicy { inner })
    }

    fn mode(&self, action: &str, direction: &str) -> PyResult<&'static str> {
        Ok(self.inner.mode(action, direction_from(direction)?).name())
    }

    fn __repr__(&self) -> String {
        let overrides: HashMap<String, &str> = self
            .inner
            .overrides()
            .into_iter()
            .map(|(k, m)| (k, m.name()))
            .collect();
        let mut items: Vec<_> = overrides.into_iter().collect();
        items.sort();
        format!(
            "Policy({:?}, {{{}}})",
            self.inner.default_mode().name(),
            items
                .iter()
                .map(|(k, m)| format!("{k:?}: {m:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// What to do with one frame. Frozen.
#[pyclass(frozen, freelist = 64, module = "ocpp_gateway._core", name = "Verdict")]
struct PyVerdict {
    #[pyo3(get)]
    forward: bool,
    #[pyo3(get)]
    reply: Option<Py<PyBytes>>,
    #[pyo3(get)]
    substitute: Option<Py<PyBytes>>,
    #[pyo3(get)]
    error_code: Option<Py<PyString>>,
    #[pyo3(get)]
    error_detail: Option<String>,
    /// (error_path, error_keyword) of a payload violation; boxed, as most verdicts have none.
    location: Option<Box<(String, Py<PyString>)>>,
    #[pyo3(get)]
    relaxed: Option<Py<PyString>>,
    #[pyo3(get)]
    observed: bool,
    #[pyo3(get)]
    drop_reason: Option<Py<PyString>>,
    #[pyo3(get)]
    message_type: u8,
    /// Kept in Rust and turned into a Python str only when read: most verdicts never are.
    unique_id: Option<Uid>,
    #[pyo3(get)]
    action: Option<Py<PyString>>,
    #[pyo3(get)]
    call_duration: Option<f64>,
}

/// A UniqueId (at most 36 characters) stored without allocating when it fits in 40 bytes.
enum Uid {
    Inline { len: u8, buf: [u8; 40] },
    Heap(Box<str>),
}

impl Uid {
    fn new(s: &str) -> Self {
        if s.len() <= 40 {
            let mut buf = [0u8; 40];
            buf[..s.len()].copy_from_slice(s.as_bytes());
            Uid::Inline {
                len: s.len() as u8,
                buf,
            }
        } else {
            Uid::Heap(s.into())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Uid::Inline { len, buf } => {
                std::str::from_utf8(&buf[..usize::from(*len)]).expect("copied from a str")
            }
            Uid::Heap(s) => s,
        }
    }
}

#[pymethods]
impl PyVerdict {
    #[getter]
    fn error_path(&self) -> Option<&str> {
        self.location.as_deref().map(|(p, _)| p.as_str())
    }

    #[getter]
    fn error_keyword(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.location.as_deref().map(|(_, k)| k.clone_ref(py))
    }

    #[getter]
    fn unique_id<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyString>> {
        self.unique_id
            .as_ref()
            .map(|u| PyString::new(py, u.as_str()))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let s = |o: &Option<Py<PyString>>| {
            o.as_ref().map_or_else(
                || "None".to_owned(),
                |s| format!("{:?}", s.bind(py).to_string()),
            )
        };
        format!(
            "Verdict(forward={}, message_type={}, unique_id={}, action={}, error_code={}, \
             drop_reason={}, observed={}, relaxed={}, reply={}, substitute={})",
            if self.forward { "True" } else { "False" },
            self.message_type,
            self.unique_id
                .as_ref()
                .map_or_else(|| "None".to_owned(), |u| format!("{:?}", u.as_str())),
            s(&self.action),
            s(&self.error_code),
            s(&self.drop_reason),
            if self.observed { "True" } else { "False" },
            s(&self.relaxed),
            self.reply.is_some(),
            self.substitute.is_some(),
        )
    }
}

/// The OCPP-J state of one charge point connection: pending calls in both directions.
/// Frame counters shared by the Sessions of one version.
#[pyclass(module = "ocpp_gateway._core", name = "Stats")]
struct PyStats {
    inner: ocpp_core::Stats,
    schemas: Py<PySchemaSet>,
}

type MessageRow = (&'static str, u8, Option<Py<PyString>>, u64);
type DurationRow = (&'static str, Option<Py<PyString>>, Vec<u64>, f64);
type SizeRow = (&'static str, Vec<u64>, f64);

#[pymethods]
impl PyStats {
    #[new]
    fn new(schemas: Py<PySchemaSet>, duration_bounds: Vec<f64>, size_bounds: Vec<f64>) -> Self {
        let actions = schemas.get().inner.version().actions().len();
        PyStats {
            inner: ocpp_core::Stats::new(actions, duration_bounds, size_bounds),
            schemas,
        }
    }

    /// Drain the counters: (messages, durations, sizes) since the last call.
    fn take(&mut self, py: Python<'_>) -> (Vec<MessageRow>, Vec<DurationRow>, Vec<SizeRow>) {
        let snap = self.inner.take();
        let set = self.schemas.get();
        let name = |a: Option<u16>| a.map(|id| set.name(py, id));
        (
            snap.messages
                .into_iter()
                .map(|(d, t, a, n)| (d.name(), t, name(a), n))
                .collect(),
            snap.durations
                .into_iter()
                .map(|(d, a, counts, sum)| (d.name(), name(a), counts, sum))
                .collect(),
            snap.sizes
                .into_iter()
                .map(|(d, counts, sum)| (d.name(), counts, sum))
                .collect(),
        )
    }
}

#[pyclass(module = "ocpp_gateway._core", name = "Session")]
struct PySession {
    inner: ocpp_core::Session,
    schemas: Py<PySchemaSet>,
    policy: Py<PyPolicy>,
    model_rules: Option<Py<PyModelRules>>,
    stats: Option<Py<PyStats>>,
}

impl PySession {
    fn convert(&self, py: Python<'_>, v: ocpp_core::Verdict<'_>) -> PyVerdict {
        let set = self.schemas.get();
        PyVerdict {
            forward: v.forward,
            reply: v.reply.map(|b| PyBytes::new(py, &b).unbind()),
            substitute: v.substitute.map(|b| PyBytes::new(py, &b).unbind()),
            error_code: v.error.map(|k| set.code(py, k)),
            error_detail: v.error_detail,
            location: v.error_location.map(|l| {
                let keyword = PyString::intern(py, l.keyword).unbind();
                Box::new((l.path, keyword))
            }),
            relaxed: v.relaxed.map(|r| PyString::new(py, &r).unbind()),
            observed: v.observed,
            drop_reason: v.drop_reason.map(|d| set.drop_reason(py, d)),
            message_type: v.message_type,
            unique_id: v.unique_id.map(|u| Uid::new(&u)),
            action: v.action.map(|a| set.name(py, a)),
            call_duration: v.call_duration,
        }
    }
}

#[pymethods]
impl PySession {
    #[new]
    #[pyo3(signature = (version, schemas = None, policy = None, call_timeout = 60.0, model_rules = None, stats = None))]
    fn new(
        py: Python<'_>,
        version: &str,
        schemas: Option<Py<PySchemaSet>>,
        policy: Option<Py<PyPolicy>>,
        call_timeout: f64,
        model_rules: Option<Py<PyModelRules>>,
        stats: Option<Py<PyStats>>,
    ) -> PyResult<Self> {
        let v = version_from(version)?;
        let schemas = match (schemas, &model_rules) {
            (Some(s), _) => s,
            (None, Some(r)) => r.get().schemas.clone_ref(py),
            (None, None) => py
                .import("ocpp_gateway.schemas")?
                .getattr("default_schemas")?
                .call1((version,))?
                .extract()?,
        };
        if schemas.get().inner.version() != v {
            return Err(PyValueError::new_err(format!(
                "schemas are of {}, not {version}",
                schemas.get().inner.version().name()
            )));
        }
        if call_timeout.is_nan() || call_timeout <= 0.0 {
            return Err(PyValueError::new_err("call_timeout must be > 0"));
        }
        let policy = match policy {
            Some(p) => p,
            None => Py::new(
                py,
                PyPolicy {
                    inner: ocpp_core::Policy::default(),
                },
            )?,
        };
        let mut inner = ocpp_core::Session::new(
            schemas.get().inner.clone(),
            policy.get().inner.clone(),
            call_timeout,
        );
        if let Some(r) = &model_rules {
            inner = inner
                .with_model_rules(r.get().inner.clone())
                .map_err(PyValueError::new_err)?;
        }
        if let Some(st) = &stats {
            if st.borrow(py).schemas.get().inner.version() != v {
                return Err(PyValueError::new_err("stats are of another version"));
            }
        }
        Ok(PySession {
            inner,
            schemas,
            policy,
            model_rules,
            stats,
        })
    }

    /// (vendor, model, firmware) of the last BootNotification from the charge point.
    #[getter]
    fn boot_info(&self) -> Option<(Option<String>, Option<String>, Option<String>)> {
        self.inner
            .boot_info()
            .map(|b| (b.vendor.clone(), b.model.clone(), b.firmware.clone()))
    }

    /// The model whose rules are in force, if any.
    #[getter]
    fn model(&self) -> Option<&str> {
        self.inner.model()
    }

    #[getter]
    fn model_rules(&self, py: Python<'_>) -> Option<Py<PyModelRules>> {
        self.model_rules.as_ref().map(|r| r.clone_ref(py))
    }

    #[getter]
    fn version(&self) -> &'static str {
        self.inner.version().name()
    }

    #[getter]
    fn get_policy(&self, py: Python<'_>) -> Py<PyPolicy> {
        self.policy.clone_ref(py)
    }

    #[setter]
    fn set_policy(&mut self, policy: Py<PyPolicy>) {
        self.inner.set_policy(policy.get().inner.clone());
        self.policy = policy;
    }

    /// Judge a frame received from the charge point (to be sent to the CSMS).
    #[allow(clippy::wrong_self_convention)]
    fn from_charge_point(&mut self, py: Python<'_>, frame: &[u8], now: f64) -> PyVerdict {
        let v = self.inner.from_charge_point(frame, now);
        if let Some(stats) = &self.stats {
            stats
                .borrow_mut(py)
                .inner
                .record(Direction::CpToCsms, frame.len(), &v);
        }
        self.convert(py, v)
    }

    /// Judge a frame received from the CSMS (to be sent to the charge point).
    #[allow(clippy::wrong_self_convention)]
    fn from_csms(&mut self, py: Python<'_>, frame: &[u8], now: f64) -> PyVerdict {
        let v = self.inner.from_csms(frame, now);
        if let Some(stats) = &self.stats {
            stats
                .borrow_mut(py)
                .inner
                .record(Direction::CsmsToCp, frame.len(), &v);
        }
        self.convert(py, v)
    }

    /// Forget pending calls older than call_timeout.
    fn expire(&mut self, py: Python<'_>, now: f64) -> Vec<(&'static str, String, Py<PyString>)> {
        let set = self.schemas.get();
        self.inner
            .expire(now)
            .into_iter()
            .map(|(direction, id, action)| {
                let name = set.inner.action_id(action).map_or_else(
                    || PyString::intern(py, action).unbind(),
                    |a| set.name(py, a),
                );
                (direction.name(), id, name)
            })
            .collect()
    }

    /// Number of calls awaiting an answer, both directions.
    fn pending(&self) -> usize {
        self.inner.pending()
    }

    /// Frames judged so far: (from the charge point, from the CSMS).
    fn frames(&self) -> (u64, u64) {
        self.inner.frames()
    }

    fn __repr__(&self) -> String {
        format!(
            "Session({:?}, pending={})",
            self.inner.version().name(),
            self.inner.pending()
        )
    }
}

/// The wire spelling of an error kind in a version.
#[pyfunction]
fn error_code_for(version: &str, kind: &str) -> PyResult<&'static str> {
    let v = version_from(version)?;
    let k = ErrorKind::from_name(kind)
        .ok_or_else(|| PyValueError::new_err(format!("unknown error kind {kind:?}")))?;
    Ok(k.code(v))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("CALL", ocpp_core::frame::CALL)?;
    m.add("CALLRESULT", ocpp_core::frame::CALLRESULT)?;
    m.add("CALLERROR", ocpp_core::frame::CALLERROR)?;
    m.add("CALLRESULTERROR", ocpp_core::frame::CALLRESULTERROR)?;
    m.add("SEND", ocpp_core::frame::SEND)?;
    m.add("SchemaError", py.get_type::<SchemaError>())?;
    // The Literal aliases of the stub, also at run time so `from ... import` works anywhere.
    let literal = py.import("typing")?.getattr("Literal")?;
    let alias = |names: Vec<&str>| -> PyResult<Bound<'_, PyAny>> {
        literal.get_item(pyo3::types::PyTuple::new(py, names)?)
    };
    m.add(
        "OcppVersionName",
        alias(vec!["ocpp1.6", "ocpp2.0.1", "ocpp2.1"])?,
    )?;
    m.add("DirectionName", alias(vec!["cp_to_csms", "csms_to_cp"])?)?;
    m.add("ModeName", alias(vec!["enforce", "observe", "off"])?)?;
    m.add(
        "RelaxErrorReason",
        alias(vec!["unknown_action", "unknown_path", "invalid"])?,
    )?;
    m.add_class::<PySchemaSet>()?;
    m.add_class::<PyPolicy>()?;
    m.add_class::<PyModelRules>()?;
    m.add_class::<PyVerdict>()?;
    m.add_class::<PySession>()?;
    m.add_class::<PyStats>()?;
    m.add_function(wrap_pyfunction!(error_code_for, m)?)?;
    Ok(())
}
