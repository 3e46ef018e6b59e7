# edgecert appliance image.
#
# amazon-ebs.debian12 builds the AMI: official Debian 12 AMI, edgecert
# installed and enabled by packer/provision.sh, nothing host-specific baked
# in (user-data writes /etc/edgecert/edgecert.env at launch; see
# systemd/user-data.example).
#
#   make build                 # static bin/edgecert
#   packer init packer/
#   packer build -only=amazon-ebs.debian12 -var version=1.2.3 packer/
#
# null.appliance runs the very same provisioners over SSH against any
# Debian 12 host; scripts/appliance/test.sh uses it to provision a
# systemd-nspawn container offline.
#
# Packer >= 1.7 with the amazon plugin (packer/plugins.pkr.hcl; `packer init
# packer/`) builds the whole directory. Debian 12's Packer 1.6.6 parses this
# file once the region marked "packer>=1.7" is cut out, which is what
# scripts/appliance/packer-check.sh does for CI's offline validate. The file
# provisioners check their sources at validate time: build the binary (or
# pass -var binary=PATH) before `packer validate`.

variable "version" {
  type        = string
  default     = "dev"
  description = "edgecert version; goes into the AMI name and tags."
}

variable "binary" {
  type        = string
  default     = ""
  description = "Path of the linux/amd64 edgecert binary. Default: bin/edgecert at the repository root (make build)."
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "instance_type" {
  type    = string
  default = "t3.micro"
}

variable "volume_size" {
  type        = number
  default     = 8
  description = "Root volume size in GiB."
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for the encrypted root volume (and so the AMI snapshot). Empty: the account's default EBS key."
}

variable "ssh_host" {
  type        = string
  default     = "127.0.0.1"
  description = "null.appliance only: host to provision over SSH."
}

variable "ssh_port" {
  type    = number
  default = 22
}

variable "ssh_username" {
  type    = string
  default = "root"
}

variable "ssh_private_key_file" {
  type        = string
  default     = ""
  description = "null.appliance only: private key for ssh_username. Empty: use the SSH agent."
}

locals {
  binary = var.binary != "" ? var.binary : "${path.root}/../bin/edgecert"
  stamp  = formatdate("YYYYMMDDhhmmss", timestamp())
  tags = {
    Name        = "edgecert-${var.version}"
    Application = "edgecert"
    Version     = var.version
    BaseOS      = "debian-12"
  }
}

source "amazon-ebs" "debian12" {
  region          = var.region
  instance_type   = var.instance_type
  ami_name        = "edgecert-${var.version}-${local.stamp}"
  ami_description = "edgecert ${var.version} on Debian 12"

  source_ami_filter {
    filters = {
      name                = "debian-12-amd64-*"
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["136693071363"] # Debian
    most_recent = true
  }
  ssh_username = "admin"

  # IMDSv2 only: on the builder instance (metadata_options) and as the
  # default of every instance launched from the AMI (imds_support).
  # Packer 1.6.6 knows neither; scripts/appliance/packer-check.sh cuts this
  # marked region out before validating with it.
  # BEGIN packer>=1.7
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support = "v2.0"
  # END packer>=1.7

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = var.volume_size
    volume_type           = "gp3"
    iops                  = 3000 # gp3 baseline
    throughput            = 125  # MiB/s, gp3 baseline
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true
  }
  # The root volume is encrypted from launch on, so the snapshot and the AMI
  # are too (no encrypt_boot re-encryption copy needed).

  tags          = local.tags
  snapshot_tags = local.tags
  run_tags      = merge(local.tags, { Name = "packer-edgecert-${var.version}" })
}

source "null" "appliance" {
  communicator         = "ssh"
  ssh_host             = var.ssh_host
  ssh_port             = var.ssh_port
  ssh_username         = var.ssh_username
  ssh_private_key_file = var.ssh_private_key_file
  ssh_agent_auth       = var.ssh_private_key_file == ""
  ssh_timeout          = "2m"
}

build {
  sources = ["source.amazon-ebs.debian12", "source.null.appliance"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/edgecert-stage"]
  }

  provisioner "file" {
    source      = local.binary
    destination = "/tmp/edgecert-stage/edgecert"
  }

  provisioner "file" {
    sources = [
      "${path.root}/../systemd/edgecert.service",
      "${path.root}/../systemd/edgecert.env.example",
      "${path.root}/../systemd/edgecert.sysusers.conf",
    ]
    destination = "/tmp/edgecert-stage/"
  }

  provisioner "shell" {
    script           = "${path.root}/provision.sh"
    environment_vars = ["EDGECERT_STAGE=/tmp/edgecert-stage"]
    execute_command  = "chmod +x {{ .Path }}; {{ .Vars }} sudo -E {{ .Path }}"
  }
}
