//! Which Ingresses are ferry's: those of our class by `spec.ingressClassName` or the legacy
//! annotation, and class-less ones when our class is the default (or when told to take them).

use super::Diagnostic;
use crate::config::{CONTROLLER_NAME, ControllerConfig};
use crate::index::{Index, IngressEntry};

#[derive(Debug)]
pub(super) struct ClassSelector<'a> {
    class: &'a str,
    /// False when an IngressClass of our name belongs to another controller.
    class_is_ours: bool,
    take_classless: bool,
}

impl<'a> ClassSelector<'a> {
    pub(super) fn new(
        index: &Index,
        config: &'a ControllerConfig,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Self {
        // Without an IngressClass object the name alone decides (folders of manifests often
        // have none); with one, it must name our controller.
        let (class_is_ours, is_default) = match index.ingress_class(&config.ingress_class) {
            None => (true, false),
            Some(c) if c.controller == CONTROLLER_NAME => (true, c.is_default),
            Some(c) => {
                diagnostics.push(Diagnostic::ClassOfOtherController {
                    class: c.name.clone(),
                    controller: c.controller.clone(),
                });
                (false, false)
            }
        };
        ClassSelector {
            class: &config.ingress_class,
            class_is_ours,
            take_classless: is_default || config.watch_ingress_without_class,
        }
    }

    pub(super) fn is_ours(&self, ingress: &IngressEntry) -> bool {
        self.class_is_ours
            && match ingress.class() {
                Some(class) => class == self.class,
                None => self.take_classless,
            }
    }
}
