//! `trustctl templates load` and `trustctl templates show`: the email templates of notifications.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use trust_proto::notifications::v1::notifications_client::NotificationsClient;
use trust_proto::notifications::v1::{EmailTemplate, EmailTemplates, GetEmailTemplatesRequest};

use super::{channel, status_error, timestamp};
use crate::cli::{Endpoints, Service, TemplatesLoadArgs, TemplatesShowArgs};

/// The template files at `path`: a directory's `*.j2` files (by name), or the one file.
pub fn read_templates(path: &Path) -> Result<Vec<EmailTemplate>> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read the directory {}", path.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "j2"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("{} holds no template files (*.j2)", path.display());
        }
        files
    } else {
        vec![path.to_owned()]
    };
    files
        .iter()
        .map(|file| {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{} has no usable file name", file.display()))?
                .to_owned();
            let source = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the template {}", file.display()))?;
            Ok(EmailTemplate {
                name,
                source,
                built_in: false,
            })
        })
        .collect()
}

pub async fn load(endpoints: &Endpoints, args: &TemplatesLoadArgs) -> Result<ExitCode> {
    let templates = read_templates(&args.path)?;
    let names: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
    if args.dry_run {
        println!(
            "{} holds {} template(s): {} (dry run: nothing sent; notifications checks them when they are \
             loaded)",
            args.path.display(),
            names.len(),
            names.join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let names = names.join(", ");
    let mut client = NotificationsClient::new(channel(endpoints, Service::Notifications).await?);
    let loaded = client
        .put_email_templates(EmailTemplates {
            templates,
            ..Default::default()
        })
        .await
        .map_err(|status| status_error(Service::Notifications, "the email templates", &status))?
        .into_inner();
    println!(
        "email templates from {} loaded into notifications (revision {}): {} replaced ({names}); the rest \
         are built-in",
        args.path.display(),
        loaded.revision,
        loaded.replaced
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn show(endpoints: &Endpoints, args: &TemplatesShowArgs) -> Result<ExitCode> {
    let mut client = NotificationsClient::new(channel(endpoints, Service::Notifications).await?);
    let set = client
        .get_email_templates(GetEmailTemplatesRequest {})
        .await
        .map_err(|status| status_error(Service::Notifications, "the email templates", &status))?
        .into_inner();
    if let Some(name) = &args.name {
        let Some(template) = set.templates.iter().find(|t| &t.name == name) else {
            let known: Vec<&str> = set.templates.iter().map(|t| t.name.as_str()).collect();
            bail!("no template {name:?}; the templates are {}", known.join(", "));
        };
        print!("{}", template.source);
        return Ok(ExitCode::SUCCESS);
    }
    if set.revision == 0 {
        println!("the built-in templates (no replacements loaded)");
    } else {
        println!(
            "revision {}, loaded {}",
            set.revision,
            timestamp(set.updated_at.map(|t| t.seconds))
        );
    }
    for template in &set.templates {
        let origin = if template.built_in { "built-in" } else { "replaced" };
        println!("\n=== {} ({origin}) ===", template.name);
        print!("{}", template.source);
        if !template.source.ends_with('\n') {
            println!();
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_templates_read_as_a_set() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../notifications/templates");
        let templates = read_templates(&dir).expect("the shipped templates");
        let names: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "facts.html.j2",
                "facts.txt.j2",
                "raised.html.j2",
                "raised.subject.j2",
                "raised.txt.j2",
                "resolved.html.j2",
                "resolved.subject.j2",
                "resolved.txt.j2"
            ]
        );
        let one = read_templates(&dir.join("raised.subject.j2")).expect("one file");
        assert_eq!(one.len(), 1);
        assert!(one[0].source.contains("{{ headline }}"));
    }
}
