# funcie with Terraform (AWS provider 5), SQS backend: the layer, the two queues, a Node.js
# function with the layer, the proxy-only function, least privilege on the queues. The
# shared secret is a sensitive variable (TF_VAR_funcie_secret, or a secrets manager data
# source): never in a .tf file, never printed by plan.
#   TF_VAR_funcie_secret="$(cat ~/.config/funcie/orders.secret)" terraform apply
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

variable "app" {
  description = "The tunnel's name: funcie connect --app"
  type        = string
  default     = "orders"
}

variable "funcie_secret" {
  description = "What `funcie secret` printed; the same as funcie connect --secret-file"
  type        = string
  sensitive   = true
}

resource "aws_sqs_queue" "requests" {
  name                       = "funcie-${var.app}-requests"
  message_retention_seconds  = 3600
  max_message_size           = 1048576
  visibility_timeout_seconds = 30
}

resource "aws_sqs_queue" "responses" {
  name                       = "funcie-${var.app}-responses"
  message_retention_seconds  = 3600
  max_message_size           = 1048576
  visibility_timeout_seconds = 30
}

resource "aws_lambda_layer_version" "funcie" {
  layer_name               = "funcie"
  filename                 = "funcie-layer.zip"
  source_code_hash         = filebase64sha256("funcie-layer.zip")
  compatible_architectures = ["x86_64"]
}

resource "aws_iam_role" "function" {
  name = "${var.app}-function"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "logs" {
  role       = aws_iam_role.function.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}

resource "aws_iam_role_policy" "funcie_sqs" {
  name = "funcie-sqs"
  role = aws_iam_role.function.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "FuncieOfferRequests"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:ListQueueTags"]
        Resource = aws_sqs_queue.requests.arn
      },
      {
        Sid      = "FuncieReadAnswers"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
        Resource = aws_sqs_queue.responses.arn
      },
    ]
  })
}

resource "aws_iam_policy" "developers" {
  name        = "funcie-${var.app}-developers"
  description = "funcie connect, funcie status and funcie doctor on this app's queues"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "FuncieConnectStatusDoctor"
        Effect = "Allow"
        Action = [
          "sqs:SendMessage",
          "sqs:ReceiveMessage",
          "sqs:DeleteMessage",
          "sqs:ChangeMessageVisibility",
          "sqs:GetQueueAttributes",
        ]
        Resource = [aws_sqs_queue.requests.arn, aws_sqs_queue.responses.arn]
      },
      {
        Sid      = "FunciePresenceTag"
        Effect   = "Allow"
        Action   = ["sqs:TagQueue", "sqs:UntagQueue", "sqs:ListQueueTags"]
        Resource = aws_sqs_queue.requests.arn
      },
    ]
  })
}

locals {
  funcie_environment = {
    FUNCIE_BACKEND            = "sqs://"
    FUNCIE_APP                = var.app
    FUNCIE_REQUEST_QUEUE_URL  = aws_sqs_queue.requests.url
    FUNCIE_RESPONSE_QUEUE_URL = aws_sqs_queue.responses.url
    FUNCIE_SECRET             = var.funcie_secret
  }
}

resource "aws_lambda_function" "orders" {
  function_name    = "${var.app}-node"
  role             = aws_iam_role.function.arn
  runtime          = "nodejs20.x"
  handler          = "index.handler"
  architectures    = ["x86_64"]
  timeout          = 30
  filename         = "orders-node.zip"
  source_code_hash = filebase64sha256("orders-node.zip")
  layers           = [aws_lambda_layer_version.funcie.arn]

  environment {
    variables = merge(local.funcie_environment, {
      AWS_LAMBDA_EXEC_WRAPPER = "/opt/funcie-wrapper"
    })
  }
}

resource "aws_lambda_function" "proxy" {
  function_name    = "${var.app}-proxy"
  role             = aws_iam_role.function.arn
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = ["x86_64"]
  timeout          = 900
  filename         = "funcie-proxy.zip"
  source_code_hash = filebase64sha256("funcie-proxy.zip")

  environment {
    variables = local.funcie_environment
  }
}

output "developer_policy_arn" {
  description = "Attach it to the developers' role or user"
  value       = aws_iam_policy.developers.arn
}

output "connect" {
  value = "funcie connect --backend sqs:// --app ${var.app} --request-queue ${aws_sqs_queue.requests.url} --response-queue ${aws_sqs_queue.responses.url} --secret-file ~/.config/funcie/${var.app}.secret -- npx aws-lambda-ric index.handler"
}
