//! From the file as written ([`super::file`]) to the typed [`super::Spec`], collecting every
//! error with its place. One file per part of the spec: the system, the load, the failures
//! and their causes, the expectations.

mod expect;
mod failure;
mod system;

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::file::SpecFile;
use super::{Spec, SpecError, SpecErrors};

/// What checking needs at hand: where errors point, and the errors so far.
pub(super) struct Checker<'a> {
    path: &'a Path,
    source: &'a str,
    errors: Vec<SpecError>,
    /// The priority classes expectations are scoped to, and where: checked against the
    /// load's header mix once both are read.
    classes_measured: Vec<(String, Range<usize>)>,
    /// The routes expectations are scoped to, and where: a running system's must be named
    /// by a request kind.
    routes_measured: Vec<(String, Range<usize>)>,
}

impl Checker<'_> {
    /// Records an error at `span`.
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let error = SpecError::at_span(self.path, self.source, span, message.into());
        self.errors.push(error);
    }

    /// `value` as a duration ("250ms", "1m 30s"), or an error at it.
    fn duration(&mut self, value: &Spanned<String>, what: &str) -> Option<Duration> {
        match humantime::parse_duration(value.get_ref()) {
            Ok(duration) => Some(duration),
            Err(error) => {
                let message = format!("{what}: a duration like \"250ms\" or \"30s\": {error}");
                self.error(value.span(), message);
                None
            }
        }
    }

    /// `value` as a share from 0 to 1, written "99.5%" or 0.995, or an error at it.
    fn share(&mut self, value: &Spanned<toml::Value>, what: &str) -> Option<f64> {
        let share = match value.get_ref() {
            // NOTE: "99.9%" is read as "99.9e-2", correctly rounded to the double nearest
            // 0.999, as `0.999` is: `99.9 / 100.0` is not, and a bound one ulp off fails a
            // measured 99.9%.
            toml::Value::String(text) => text
                .strip_suffix('%')
                .map(str::trim)
                .filter(|number| !number.contains(['e', 'E']))
                .and_then(|number| format!("{number}e-2").parse::<f64>().ok()),
            toml::Value::Float(number) => Some(*number),
            toml::Value::Integer(number) => Some(*number as f64),
            _ => None,
        };
        match share {
            Some(share) if (0.0..=1.0).contains(&share) => Some(share),
            _ => {
                let message =
                    format!("{what}: a share from 0% to 100%, written \"99.5%\" or 0.995");
                self.error(value.span(), message);
                None
            }
        }
    }
}

/// Parses and checks a whole spec.
pub(super) fn spec(source: &str, path: &Path) -> Result<Spec, SpecErrors> {
    let file: SpecFile = toml::from_str(source).map_err(|error| {
        let message = error.message().to_owned();
        let error = match error.span() {
            Some(span) => SpecError::at_span(path, source, span, message),
            None => SpecError::whole_file(path, message),
        };
        SpecErrors(vec![error])
    })?;
    let mut checker = Checker {
        path,
        source,
        errors: Vec::new(),
        classes_measured: Vec::new(),
        routes_measured: Vec::new(),
    };
    let system = system::system(&mut checker, file.system);
    let load = system::load(&mut checker, file.load);
    let steady_state = file
        .steady_state
        .into_iter()
        .filter_map(|section| expect::steady(&mut checker, section))
        .collect();
    let failures = failure::failures(&mut checker, file.failures, system.as_ref(), load.as_ref());
    if let Some(load) = &load {
        classes_sent(&mut checker, load);
        if matches!(system, Some(super::System::Running(_))) {
            routes_named(&mut checker, load);
        }
    }
    match (system, load) {
        (Some(system), Some(load)) if checker.errors.is_empty() => Ok(Spec {
            name: file.name.unwrap_or_else(|| {
                path.file_stem().map_or_else(
                    || "spec".to_owned(),
                    |stem| stem.to_string_lossy().into_owned(),
                )
            }),
            system,
            load,
            steady_state,
            failures,
        }),
        _ => Err(SpecErrors(checker.errors)),
    }
}

/// An error at each class scope the load never sends: a request names its class in a
/// header (`[[load.header]]` with the class as its value); one that names none is
/// `normal`, so `normal` needs nothing.
fn classes_sent(checker: &mut Checker<'_>, load: &super::Load) {
    let measured = std::mem::take(&mut checker.classes_measured);
    for (class, span) in measured {
        let sent = class == "normal"
            || load.headers.iter().any(|share| {
                share.share > 0.0
                    && share
                        .value
                        .as_bytes()
                        .eq_ignore_ascii_case(class.as_bytes())
            });
        if !sent {
            checker.error(
                span,
                format!(
                    "`class = {class:?}`: the load sends no request of that class (add a [[load.header]] with value = {class:?}, e.g. name = \"x-blastwall-priority\")"
                ),
            );
        }
    }
}

/// An error at each route scope of a running system that no request kind names: verify
/// cannot read a running system's config, so the spec says which requests go where. (A
/// topology's routes are found from its config, by `blastwall check` and `verify`.)
fn routes_named(checker: &mut Checker<'_>, load: &super::Load) {
    let measured = std::mem::take(&mut checker.routes_measured);
    for (route, span) in measured {
        if !load
            .requests
            .iter()
            .any(|kind| kind.route.as_deref() == Some(route.as_str()))
        {
            checker.error(
                span,
                format!(
                    "`route = {route:?}`: no [[load.request]] names it (`route = {route:?}` on the requests that go there): verify cannot read a running system's config"
                ),
            );
        }
    }
}
