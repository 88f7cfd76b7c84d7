"""`service create --secret / --config` and `service update --secret-add / --secret-rm /
--config-add / --config-rm` (Docker's grammar): a secret or config as NAME, or as
source=NAME,target=T,uid=U,gid=G,mode=0400. The managers resolve the names and fill in the
defaults (target the name, uid and gid 0, mode 0444)."""
from covey.errors import InvalidArgument
from proto import specs_pb2 as specs

FILE_HELP = "NAME or source=NAME[,target=T][,uid=U][,gid=G][,mode=0444]"
KINDS = ("secret", "config")


def add_create_flags(parser) -> None:
    for kind in KINDS:
        parser.add_argument(f"--{kind}", action="append", default=[], metavar=FILE_HELP,
                            help=f"give the service a {kind}")


def add_update_flags(parser) -> None:
    for kind in KINDS:
        parser.add_argument(f"--{kind}-add", action="append", default=[], metavar=FILE_HELP)
        parser.add_argument(f"--{kind}-rm", action="append", default=[], metavar="NAME")


def apply_create(args, container: specs.ContainerSpec) -> None:
    container.secrets.extend(secret_reference(text) for text in args.secret)
    container.configs.extend(config_reference(text) for text in args.config)


def apply_update(args, container: specs.ContainerSpec) -> None:
    secrets = [r for r in container.secrets if not {r.secret_name, r.secret_id} & set(args.secret_rm)]
    container.ClearField("secrets")
    container.secrets.extend(secrets + [secret_reference(t) for t in args.secret_add])
    configs = [r for r in container.configs if not {r.config_name, r.config_id} & set(args.config_rm)]
    container.ClearField("configs")
    container.configs.extend(configs + [config_reference(t) for t in args.config_add])


def secret_reference(text: str) -> specs.SecretReference:
    name, file = _parse(text, "--secret")
    return specs.SecretReference(secret_name=name, file=file)


def config_reference(text: str) -> specs.ConfigReference:
    name, file = _parse(text, "--config")
    return specs.ConfigReference(config_name=name, file=file)


def _parse(text: str, flag: str) -> tuple[str, specs.FileTarget]:
    if "=" not in text:
        if not text:
            raise InvalidArgument(f"invalid {flag} '': give a name")
        return text, specs.FileTarget()
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = {"src": "source"}.get(key.strip().lower(), key.strip().lower())
        if not sep or key not in ("source", "target", "uid", "gid", "mode"):
            raise InvalidArgument(f"invalid {flag} {text!r}: unknown field {key!r} "
                                  "(source, target, uid, gid, mode)")
        fields[key] = value
    if not fields.get("source"):
        raise InvalidArgument(f"invalid {flag} {text!r}: source=NAME is required")
    file = specs.FileTarget(name=fields.get("target", ""), uid=fields.get("uid", ""), gid=fields.get("gid", ""))
    if "mode" in fields:
        try:
            file.mode = int(fields["mode"], 8)
        except ValueError:
            raise InvalidArgument(f"invalid {flag} {text!r}: mode {fields['mode']!r} is not an octal "
                                  "number like 0400") from None
    for owner in ("uid", "gid"):
        if getattr(file, owner) and not getattr(file, owner).isdigit():
            raise InvalidArgument(f"invalid {flag} {text!r}: {owner} must be a number")
    return fields["source"], file


def pretty_lines(container: specs.ContainerSpec) -> list[str]:
    """`service inspect --pretty`: each secret and config and where the container sees it."""
    lines = []
    if container.secrets:
        lines.append("Secrets:")
        lines += [f" Target:\t{r.file.name}\n  Source:\t{r.secret_name}" for r in container.secrets]
    if container.configs:
        lines.append("Configs:")
        lines += [f" Target:\t{r.file.name}\n  Source:\t{r.config_name}" for r in container.configs]
    return lines
