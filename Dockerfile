FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --create-home riskcast
WORKDIR /app
COPY pyproject.toml README.md ./
COPY broadcaster ./broadcaster
COPY workers ./workers
COPY messages ./messages
COPY bench ./bench
RUN pip install --no-cache-dir . flower
USER riskcast
EXPOSE 8000
CMD ["riskcast", "api", "--host", "0.0.0.0", "--port", "8000"]
