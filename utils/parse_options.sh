#!/usr/bin/env bash
# Kaldi-style option parsing, sourced by recipe scripts after they set their defaults:
#   --some-option VALUE   sets the shell variable some_option (which must already exist)
#   --some-option=VALUE   same
#   --flag                a true|false option given alone (last, or before another --option): true
#   --help / -h           prints $help_message and exits 0
# Unknown options are an error; remaining positional arguments are left in "$@".
while true; do
  [ -z "${1:-}" ] && break
  case "$1" in
    --help|-h)
      printf '%s\n' "${help_message:-no help available}"
      exit 0 ;;
    --*=*)
      name="${1%%=*}"; value="${1#*=}"; shift
      set -- "$name" "$value" "$@"
      continue ;;
    --*)
      name=$(echo "${1#--}" | tr '-' '_')
      if declare -p "$name" >/dev/null 2>&1 && [[ "${!name}" =~ ^(true|false)$ ]] && { [ "$#" -lt 2 ] || [[ "$2" == --* ]]; }; then
        printf -v "$name" '%s' true
        shift
        continue
      fi
      if [ "$#" -lt 2 ]; then
        echo "$0: option $1 needs a value" >&2; exit 1
      fi
      if ! declare -p "$name" >/dev/null 2>&1; then
        echo "$0: unknown option $1 (see --help)" >&2; exit 1
      fi
      eval "old_value=\${$name}"
      case "$old_value" in
        true|false)
          case "$2" in true|false) ;; *) echo "$0: $1 expects true or false, got '$2'" >&2; exit 1 ;; esac ;;
      esac
      printf -v "$name" '%s' "$2"
      shift 2 ;;
    *) break ;;
  esac
done
true
